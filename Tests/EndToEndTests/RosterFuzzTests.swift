import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

/// Mutations of valid rosters: every input ends in a plan or a located error, never a crash, a hang or another
/// kind of error. In-process (parse, desire, plan) for thousands of inputs; a handful through the binary.
@Suite struct RosterFuzzTests {
    static let seeds: [String] = [
        HostileCase.base,
        (try? String(contentsOf: Repository.examples.appendingPathComponent("roster.yaml"), encoding: .utf8)) ?? "",
        """
        users:
          alice:
            authentik_user: alice.smith
            k8s_user: alice
            tier: power-user
            email: alice@example.org
            uid: 1500
            port: 3800
            groups: [devs]
            flags: [ha]
            memory: { high: 4G, max: 6G, swap_max: 1G }
            repo: { url: "https://git.example.org/infra.git", branch: main }
          bob:
            authentik_user: bob
            k8s_user: bob
            tier: namespace-owner
            namespaces:
              - team-bob
              - team-b2

        """,
    ]

    static let tokens: [String] = [
        "{", "}", "[", "]", ":", ": ", ",", "- ", "-", "&a ", "*a", "!!str ", "!!int ", "!!binary ", "!custom ", "? ",
        "|", ">",
        "#", "'", "\"", "\\", "\t", "\0", "~", "null", "no", "yes", "off", "0700", "01001", "0x1F", "1e9", ".nan",
        "<<: *a",
        "\u{FEFF}", "é", "\u{202E}", "%YAML 1.1\n", "---\n", "...\n", "@", "`", "=", "\n", "  ", "    ", "users:",
        "tier: admin",
        "uid: 0", "port: 80", "namespaces: []", "&b [*b]", "- - - - ", "[[[[", "{a: {b: {c:",
        String(repeating: "x", count: 300),
    ]

    /// One random edit of the text (bytes, so invalid UTF-8 appears too).
    static func mutate(_ input: Data, _ rng: inout SeededGenerator) -> Data {
        var d = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = d.isEmpty ? 0 : Int.random(in: 0..<d.count, using: &rng)
            switch Int.random(in: 0..<9, using: &rng) {
            case 0 where !d.isEmpty:
                let n = min(Int.random(in: 1...20, using: &rng), d.count - at)
                d.removeSubrange(at..<(at + n))
            case 1:
                d.insert(contentsOf: Data(tokens.randomElement(using: &rng)!.utf8), at: at)
            case 2 where !d.isEmpty:
                d[at] = UInt8.random(in: 0...255, using: &rng)
            case 3 where !d.isEmpty:
                d[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 4:
                d = d.prefix(at)
            default:
                var lines = d.split(separator: 0x0A, omittingEmptySubsequences: false).map { Data($0) }
                guard lines.count > 1 else { continue }
                let i = Int.random(in: 0..<lines.count, using: &rng)
                let j = Int.random(in: 0..<lines.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: lines.insert(lines[i], at: j)
                case 1: lines.swapAt(i, j)
                case 2:
                    lines[i] =
                        Data(String(repeating: " ", count: Int.random(in: 0...6, using: &rng)).utf8)
                        + lines[i].drop { $0 == 0x20 }
                default:
                    lines.insert(
                        contentsOf: Array(repeating: lines[i], count: Int.random(in: 2...50, using: &rng)),
                        at: j
                    )
                }
                d = Data(lines.joined(separator: [0x0A]))
            }
        }
        return d
    }

    /// A host that already has some of the people and a hand-made group, in memory.
    static let snapshot: HostSnapshot = {
        var s = HostSnapshot()
        s.passwd = [
            PasswdEntry(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash"),
            PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "erin", uid: 1500, gid: 1500, home: "/home/erin", shell: "/bin/bash"),
        ]
        s.groups = [
            GroupEntry(name: "sudo", gid: 27, members: ["carol"]),
            GroupEntry(name: "devs", gid: 1600, members: ["alice"]),
            GroupEntry(name: "alice", gid: 1000, members: []),
        ]
        s.paths["/home/alice"] = PathState(kind: .directory, mode: 0o755, uid: 1000, gid: 1000)
        return s
    }()

    enum Outcome { case plan, located }

    /// Parse, desire and plan one input; returns how it ended, or records an issue.
    static func run(_ data: Data, _ context: @autoclosure () -> String) -> Outcome? {
        let settings = Settings()
        do {
            let roster = try Roster.parse(data, file: "roster.yaml", settings: settings)
            let desired = desire(roster: roster, settings: settings, snapshot: snapshot)
            if !desired.diagnostics.isEmpty {
                for d in desired.diagnostics
                where d.location.file != "roster.yaml" || d.location.line < 1 || d.message.isEmpty {
                    Issue.record("unlocated host diagnostic \(d) for \(context())")
                }
                return .located
            }
            _ = Planner(settings: settings).plan(desired: desired, observed: snapshot)
            return .plan
        } catch let failure as ValidationFailure {
            if failure.diagnostics.isEmpty { Issue.record("validation failure without a diagnostic for \(context())") }
            for d in failure.diagnostics {
                let wholeFile = d.message.contains("over the limit")
                if d.location.file != "roster.yaml" || (d.location.line < 1 && !wholeFile) || d.message.isEmpty {
                    Issue.record("unlocated diagnostic '\(d)' for \(context())")
                }
            }
            return .located
        } catch {
            Issue.record("unexpected error \(type(of: error)): \(error) for \(context())")
            return nil
        }
    }

    @Test func mutatedRostersEndInAPlanOrALocatedError() {
        let seed = testSeed("fuzz")
        var rng = SeededGenerator(seed: seed)
        var plans = 0
        var located = 0
        let count = slowSuitesEnabled ? 6000 : 1500
        for i in 0..<count {
            let base = Data(Self.seeds[i % Self.seeds.count].utf8)
            let input = Self.mutate(base, &rng)
            switch Self.run(
                input,
                "seed \(seed) input \(i): \(String(decoding: input.prefix(400), as: UTF8.self).debugDescription)"
            ) {
            case .plan: plans += 1
            case .located: located += 1
            case nil: break
            }
        }
        print("fuzz: \(count) inputs, \(plans) plans, \(located) located errors")
        #expect(
            plans > 0 && located > 0,
            "the mutations should produce both outcomes (plans \(plans), errors \(located))"
        )
        #expect(plans + located == count)
    }

    /// The same through the binary: exit 0 or 1 (never a signal), and an error always names the roster file and line.
    @Test func mutatedRostersThroughTheBinary() throws {
        let seed = testSeed("fuzz-binary")
        var rng = SeededGenerator(seed: seed)
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        for i in 0..<24 {
            let input = Self.mutate(Data(Self.seeds[i % Self.seeds.count].utf8), &rng)
            let path = inputs.file("/fuzz-\(i).yaml")
            FileManager.default.createFile(atPath: path, contents: input)
            let before = TreeSnapshot(root.path)
            let r = try CLI.run(["plan", "--roster", path, "--settings", Fixture.settingsPath, "--root", root.path])
            let context =
                "seed \(seed) input \(i): \(String(decoding: input.prefix(300), as: UTF8.self).debugDescription)"
            #expect(
                r.status == 0 || r.status == 1 || r.status == 3,
                "\(context): exit \(r.status)\n\(r.stderr.suffix(800))"
            )
            if r.status == 1 {
                #expect(
                    r.stderr.contains("\(path):") && r.stderr.contains(": error: "),
                    "\(context): error not located:\n\(r.stderr.prefix(800))"
                )
            }
            #expect(TreeSnapshot(root.path) == before, "\(context): plan changed the root")
        }
    }
}
