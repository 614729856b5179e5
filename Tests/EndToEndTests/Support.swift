import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Paths of the example inputs.
enum Inputs {
    static var roster: String { Repository.examples.appendingPathComponent("roster.yaml").path }
    static var settings: String { Repository.examples.appendingPathComponent("workstation.yaml").path }
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

    /// Where `settingsPath` lives: one directory for the whole test process (a static, so it outlives every test).
    static let settingsDirectory = try! TempRoot("settings")

    /// The example settings with the headcount limit lifted: these suites onboard hundreds of people at once.
    static let settingsPath: String = {
        let example =
            (try? String(
                contentsOfFile: Repository.examples.appendingPathComponent("workstation.yaml").path,
                encoding: .utf8
            ))
            ?? ""
        try? settingsDirectory.write(
            "/workstation.yaml",
            example.replacingOccurrences(of: "max_active_users: 5", with: "max_active_users: 10000")
        )
        return settingsDirectory.file("/workstation.yaml")
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
