import Foundation
import Testing

/// Runs the built `workstation` binary and captures its output.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CLI {
    /// The binary next to the test bundle in `.build/<config>/`.
    static var binary: String {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for config in ["debug", "release"] {
            let p = dir.appendingPathComponent(".build/\(config)/workstation").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent(".build/debug/workstation").path
    }

    static var examples: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Examples")
            .standardized
    }

    @discardableResult
    static func run(_ args: [String], env: [String: String] = [:]) throws -> CLIResult {
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        for (k, v) in env { environment[k] = v }
        return try capture(binary, args, environment: environment)
    }
}

extension CLI {
    /// Runs a system tool (tar, sha256sum, setfacl, ...), not workstation, and captures its output.
    static func runTool(_ exe: String, _ args: [String]) throws -> CLIResult {
        try capture(exe, args, environment: ProcessInfo.processInfo.environment)
    }

    /// Runs a shadow-utils account tool (`useradd`, `groupadd`, `usermod` from /usr/sbin) on the temp root at
    /// `prefix` only: `--prefix` is always the first argument, so no test can edit this machine's accounts.
    static func accountTool(_ name: String, prefix: String, _ args: [String]) throws -> CLIResult {
        try runTool("/usr/sbin/\(name)", ["--prefix", prefix] + args)
    }
}

/// Runs a program with exactly `environment`, standard input empty, and captures both outputs.
func capture(_ executable: String, _ args: [String], environment: [String: String]) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.environment = environment
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    nonisolated(unsafe) var errData = Data()
    let g = DispatchGroup()
    g.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        g.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    g.wait()
    p.waitUntilExit()
    return CLIResult(
        status: p.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self)
    )
}

/// A temporary host root, removed at the end.
final class TempRoot {
    let path: String
    init() throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("ws-root-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ hostPath: String) -> String { path + hostPath }
    /// True when anything (even a dangling link) is at the path.
    func exists(_ hostPath: String) -> Bool {
        var st = stat()
        return lstat(file(hostPath), &st) == 0
    }
    func read(_ hostPath: String) -> String? { (try? String(contentsOfFile: file(hostPath), encoding: .utf8)) }
    func write(_ hostPath: String, _ content: String) throws {
        let full = file(hostPath)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try content.write(toFile: full, atomically: true, encoding: .utf8)
    }
}

extension TempRoot {
    /// Every entry under the root: path -> type, mode, owner, link target and bytes. Equal snapshots mean
    /// nothing was created, removed, written, chowned or chmodded.
    func snapshot() -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: path) else { return out }
        while let rel = walker.nextObject() as? String {
            let full = path + "/" + rel
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            var desc = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid)"
            if st.st_mode & S_IFMT == S_IFLNK {
                desc += " -> \((try? fm.destinationOfSymbolicLink(atPath: full)) ?? "?")"
            } else if st.st_mode & S_IFMT == S_IFREG, let data = fm.contents(atPath: full) {
                desc += " bytes=\(data.base64EncodedString())"
            }
            out[rel] = desc
        }
        return out
    }
}

/// Paths of the example inputs, and a way to write variants of them.
enum Inputs {
    static var roster: String { CLI.examples.appendingPathComponent("roster.yaml").path }
    static var settings: String { CLI.examples.appendingPathComponent("workstation.yaml").path }
}
