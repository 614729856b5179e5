import Foundation
import Synchronization

/// The result of running a tool.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs the tools the OS owns (useradd, systemctl, git...). The one boundary through which workstation spawns.
public protocol CommandRunner: Sendable {
    /// Runs `argv[0]` (an absolute path or a name looked up in PATH) with the rest as arguments, waiting for it.
    /// - Parameters:
    ///   - environment: extra variables on top of a minimal `PATH`/`LANG=C` environment.
    ///   - stdin: bytes written to its standard input.
    /// - Throws: `CommandError.notFound` when the program cannot be started. A non-zero exit is not thrown:
    ///   read `status`.
    func run(_ argv: [String], environment: [String: String], stdin: Data?) throws -> CommandResult
    /// How many processes this runner has started.
    var spawned: Int { get }
    /// Runs like `run(_:environment:stdin:)` with no input, handing each piece the tool writes to standard error to
    /// `onStderr` as it arrives: pieces end at `\n` or `\r` (progress meters), terminator dropped. The whole
    /// stderr is still in the result. The default implementation delivers the pieces when the tool has exited.
    /// - Throws: as `run`.
    func stream(
        _ argv: [String],
        environment: [String: String],
        onStderr: @escaping @Sendable (String) -> Void
    ) throws -> CommandResult
}

extension CommandRunner {
    public func stream(
        _ argv: [String],
        environment: [String: String],
        onStderr: @escaping @Sendable (String) -> Void
    ) throws -> CommandResult {
        let r = try run(argv, environment: environment, stdin: nil)
        for piece in r.stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            onStderr(String(piece))
        }
        return r
    }
}

extension CommandRunner {
    public func run(_ argv: [String]) throws -> CommandResult { try run(argv, environment: [:], stdin: nil) }

    /// Runs and throws `CommandError.failed` (with the command line and stderr) on a non-zero exit.
    @discardableResult
    public func check(_ argv: [String], environment: [String: String] = [:], stdin: Data? = nil) throws -> CommandResult
    {
        let r = try run(argv, environment: environment, stdin: stdin)
        guard r.status == 0 else { throw CommandError.failed(command: argv, status: r.status, stderr: r.stderr) }
        return r
    }
}

public enum CommandError: Error, CustomStringConvertible {
    case notFound(String)
    case failed(command: [String], status: Int32, stderr: String)

    public var description: String {
        switch self {
        case .notFound(let p): "cannot run \(p): not found in PATH; install it"
        case .failed(let cmd, let status, let stderr):
            "`\(cmd.joined(separator: " "))` exited \(status)\(stderr.isEmpty ? "" : ": \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))")"
        }
    }
}

/// Processes started by every `ProcessRunner` of this process (the one boundary through which workstation spawns).
private let spawnedByProcess = Atomic<Int>(0)

/// The live runner: `Foundation.Process`, with a fixed `PATH` so a caller's environment cannot redirect root's tools.
public final class ProcessRunner: CommandRunner {
    private let counter = Atomic<Int>(0)
    public static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public init() {}

    public var spawned: Int { counter.load(ordering: .relaxed) }

    /// Processes started by all `ProcessRunner`s of this process so far (what `plan --json` reports).
    public static var spawnedByThisProcess: Int { spawnedByProcess.load(ordering: .relaxed) }

    public func run(_ argv: [String], environment: [String: String], stdin: Data?) throws -> CommandResult {
        try spawn(argv, environment: environment, stdin: stdin, onStderr: nil)
    }

    public func stream(
        _ argv: [String],
        environment: [String: String],
        onStderr: @escaping @Sendable (String) -> Void
    ) throws -> CommandResult {
        try spawn(argv, environment: environment, stdin: nil, onStderr: onStderr)
    }

    private func spawn(
        _ argv: [String],
        environment: [String: String],
        stdin: Data?,
        onStderr: (@Sendable (String) -> Void)?
    ) throws -> CommandResult {
        guard let exe = Self.resolve(argv[0]) else { throw CommandError.notFound(argv[0]) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = Array(argv.dropFirst())
        var env = ["PATH": Self.path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"]
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        let inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = stdin == nil ? FileHandle.nullDevice : inp
        try p.run()
        counter.add(1, ordering: .relaxed)
        spawnedByProcess.add(1, ordering: .relaxed)
        if let stdin {
            inp.fileHandleForWriting.write(stdin)
            try? inp.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so neither fills up.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            if let onStderr {
                // Read as it comes and hand over complete pieces (ending at \n or \r).
                var pending = Data()
                while true {
                    let chunk = err.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    errData.append(chunk)
                    pending.append(chunk)
                    while let cut = pending.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                        let piece = pending[pending.startIndex..<cut]
                        pending = Data(pending[pending.index(after: cut)...])
                        if !piece.isEmpty { onStderr(String(decoding: piece, as: UTF8.self)) }
                    }
                }
                if !pending.isEmpty { onStderr(String(decoding: pending, as: UTF8.self)) }
            } else {
                errData = err.fileHandleForReading.readDataToEndOfFile()
            }
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return CommandResult(
            status: p.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self)
        )
    }

    static func resolve(_ name: String) -> String? {
        if name.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }
}
