import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every entry under a directory, as `lstat(2)` and the bytes see it: kind, mode, owner, size, content (regular
/// files), link target (symlinks). Two snapshots are equal exactly when nothing under the root changed.
struct RootSnapshot: Equatable {
    struct Entry: Equatable, CustomStringConvertible {
        var kind: String
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var content: Data?
        var linkTarget: String?
        var description: String {
            "\(kind) mode \(String(mode, radix: 8)) owner \(uid):\(gid)"
                + (linkTarget.map { " -> \($0)" } ?? "") + (content.map { " \($0.count) bytes" } ?? "")
        }
    }

    /// Relative path ("" for the root itself) -> entry.
    var entries: [String: Entry] = [:]

    /// Walks `directory` without following symlinks.
    init(_ directory: String) {
        walk(directory, "")
    }

    private mutating func walk(_ base: String, _ rel: String) {
        let full = rel.isEmpty ? base : base + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else { return }
        let type = st.st_mode & S_IFMT
        var e = Entry(kind: "other", mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid)
        switch type {
        case S_IFREG:
            e.kind = "file"
            e.content = FileManager.default.contents(atPath: full) ?? Data()
        case S_IFLNK:
            e.kind = "link"
            e.linkTarget = try? FileManager.default.destinationOfSymbolicLink(atPath: full)
        case S_IFDIR:
            e.kind = "dir"
        default: break
        }
        entries[rel] = e
        if type == S_IFDIR {
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted() {
                walk(base, rel.isEmpty ? name : rel + "/" + name)
            }
        }
    }

    /// Human list of what differs (added, removed, changed), empty when equal.
    func differences(to other: RootSnapshot) -> [String] {
        var out: [String] = []
        for k in Set(entries.keys).union(other.entries.keys).sorted() {
            switch (entries[k], other.entries[k]) {
            case (nil, let b?): out.append("added /\(k): \(b)")
            case (let a?, nil): out.append("removed /\(k): \(a)")
            case (let a?, let b?) where a != b: out.append("changed /\(k): \(a) => \(b)")
            default: break
            }
        }
        return out
    }
}

/// True when the slow suites should run (unset `WORKSTATION_SKIP_SLOW`; CI never sets it).
let slowSuitesEnabled = ProcessInfo.processInfo.environment["WORKSTATION_SKIP_SLOW"] == nil

/// A small deterministic generator (SplitMix64), so a failing seed can be replayed exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a randomized test: `WORKSTATION_TEST_SEED` when set (to replay a failure), else a fresh one.
/// Tests print it so a failure can be reproduced.
func testSeed(_ name: String) -> UInt64 {
    if let s = ProcessInfo.processInfo.environment["WORKSTATION_TEST_SEED"], let n = UInt64(s) { return n }
    let n = UInt64.random(in: 1...UInt64(Int64.max))
    print("\(name): seed \(n) (replay with WORKSTATION_TEST_SEED=\(n))")
    return n
}

/// Helpers shared by the reliability suites: a seeded root, rosters of generated people, the settings file.
enum Fixture {
    /// Writes a roster of `count` power-users `user0001...` (authentik `id-user0001`) plus `extra` YAML lines.
    static func roster(count: Int, prefix: String = "u", authentikPrefix: String = "id-", extra: String = "") -> String
    {
        var s = "users:\n"
        for i in 0..<count {
            let name = "\(prefix)\(String(format: "%04d", i))"
            s += "  \(name): { authentik_user: \(authentikPrefix)\(name), k8s_user: \(name), tier: power-user }\n"
        }
        return s + extra
    }

    /// The example settings with the headcount limit lifted: these suites onboard hundreds of people at once.
    static let settingsPath: String = {
        let example =
            (try? String(contentsOfFile: CLI.examples.appendingPathComponent("workstation.yaml").path, encoding: .utf8))
            ?? ""
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ws-settings-\(getpid()).yaml").path
        try? example.replacingOccurrences(of: "max_active_users: 5", with: "max_active_users: 10000")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }()

    /// Seeds `root` as a fresh Debian host by applying an empty roster with `--init-root`.
    static func seed(_ root: TempRoot) throws {
        try root.write("/tmp-inputs/empty.yaml", "users: {}\n")
        let r = try CLI.run([
            "apply", "--roster", root.file("/tmp-inputs/empty.yaml"), "--settings", settingsPath, "--root", root.path,
            "--init-root",
        ])
        #expect(r.status == 0, "seeding failed: \(r.stderr)")
    }
}
