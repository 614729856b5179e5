import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Random rosters applied to random pre-existing hosts (seeded): apply never removes or rewrites an account, group
/// membership, file, link or directory it did not create, and a second plan is always empty.
@Suite(.serialized, .enabled(if: slowSuitesEnabled, "slow: skipped while WORKSTATION_SKIP_SLOW is set"))
struct ApplyPropertyTests {
    static let pool = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    static let handGroups = ["devs", "ops"]

    /// Runs the shadow-utils tool `name` against the temp root: `--prefix ROOT` is always its first argument.
    func tool(_ name: String, prefix root: HostRoot, _ args: [String]) throws {
        let r = try TestProcess.accountTool(name, prefix: root.directory, args)
        #expect(r.status == 0, "\(name) \(args.joined(separator: " ")): \(r.stderr)")
    }

    /// Builds a random pre-existing host under `root`. Returns the os_users that exist before workstation runs.
    func randomHost(_ root: HostRoot, _ rng: inout SeededGenerator, log: inout [String]) throws -> Set<String> {
        for g in Self.handGroups where Bool.random(using: &rng) {
            try tool("groupadd", prefix: root, [g])
            log.append("group \(g)")
        }
        if Bool.random(using: &rng) {
            // pre-existing managed group, with hand-made members later
            try tool("groupadd", prefix: root, ["--system", "workstation"])
            log.append("group workstation (hand-made)")
        }
        let groups = AccountDatabase.group(root.read("/etc/group") ?? Data()).map(\.name)
        var existing = Set<String>()
        for name in Self.pool + ["mallory"] where Int.random(in: 0..<3, using: &rng) == 0 {
            var argv: [String] = []
            let withHome = Bool.random(using: &rng)
            if withHome { argv.append("-m") }
            let extra = ["users", "audio", "video", "staff", "workstation", "sudo"] + Self.handGroups
            let chosen = extra.filter { groups.contains($0) && Int.random(in: 0..<3, using: &rng) == 0 }
            if !chosen.isEmpty { argv += ["-G", chosen.joined(separator: ",")] }
            try tool("useradd", prefix: root, argv + [name])
            existing.insert(name)
            log.append("account \(name)\(withHome ? " with home" : "") groups \(chosen)")
            guard withHome else { continue }
            let home = root.path("/home/\(name)")
            if Bool.random(using: &rng) {
                chmod(home, 0o755)
                log.append("  home 0755")
            }
            try "notes of \(name)\n".write(toFile: home + "/notes.txt", atomically: false, encoding: .utf8)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:
                try FileManager.default.createDirectory(
                    atPath: home + "/.claude/skills/mine",
                    withIntermediateDirectories: true
                )
                try "my rule\n".write(toFile: home + "/.claude/rules", atomically: false, encoding: .utf8)
                try FileManager.default.createSymbolicLink(
                    atPath: home + "/.claude/agents",
                    withDestinationPath: "/srv/elsewhere/agents"
                )
                log.append("  own ~/.claude with skills dir, rules file, agents link")
            case 1:
                try FileManager.default.createDirectory(
                    atPath: root.path("/srv/secret"),
                    withIntermediateDirectories: true
                )
                try "secret\n".write(toFile: root.path("/srv/secret/key"), atomically: false, encoding: .utf8)
                try FileManager.default.createSymbolicLink(
                    atPath: home + "/.claude",
                    withDestinationPath: root.path("/srv/secret")
                )
                log.append("  ~/.claude is a link out of the home")
            case 2:
                try "not a directory\n".write(toFile: home + "/.claude", atomically: false, encoding: .utf8)
                log.append("  ~/.claude is a file")
            default: break
            }
        }
        // Homes that exist without an account (a restored backup), owned by root.
        for name in Self.pool where !existing.contains(name) && Int.random(in: 0..<6, using: &rng) == 0 {
            let home = root.path("/home/\(name)")
            try FileManager.default.createDirectory(atPath: home + "/projects", withIntermediateDirectories: true)
            try "restored\n".write(toFile: home + "/projects/README", atomically: false, encoding: .utf8)
            chmod(home, 0o755)
            log.append("root-owned home /home/\(name) without an account")
        }
        return existing
    }

    /// A random valid roster over the pool.
    func randomRoster(_ rng: inout SeededGenerator, existing: Set<String>) -> String {
        var s = "users:\n"
        var namespaceIndex = 0
        let chosen = Self.pool.filter { _ in Int.random(in: 0..<2, using: &rng) == 0 }
        for name in (chosen.isEmpty ? ["alice"] : chosen) {
            var fields = "authentik_user: \(name).idp, k8s_user: \(name)"
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where existing.contains(name): fields += ", tier: admin"
            case 1, 2:
                namespaceIndex += 1
                fields += ", tier: namespace-owner, namespaces: [team-\(namespaceIndex)]"
            default: fields += ", tier: power-user"
            }
            let extra = Self.handGroups.filter { _ in Int.random(in: 0..<4, using: &rng) == 0 }
            if !extra.isEmpty { fields += ", groups: [\(extra.joined(separator: ", "))]" }
            s += "  \(name): { \(fields) }\n"
        }
        return s
    }

    @Test func applyOnlyAddsAndTheSecondPlanIsEmpty() throws {
        let seed = testSeed("property")
        var rng = SeededGenerator(seed: seed)
        let settings = try Settings.parse(
            try Data(contentsOf: URL(fileURLWithPath: Fixture.settingsPath)),
            file: "workstation.yaml"
        )
        let databases: Set<String> = [
            "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/passwd-", "etc/group-", "etc/shadow-",
            "etc/gshadow-", "etc/subuid", "etc/subgid", "etc/subuid-", "etc/subgid-",
        ]
        for iteration in 0..<10 {
            let dir = try TempRoot()
            let root = HostRoot(dir.path)
            try SandboxRoot.seed(root, settings: settings)
            var log: [String] = []
            let existing = try randomHost(root, &rng, log: &log)
            let rosterText = randomRoster(&rng, existing: existing)
            let inputs = try TempRoot()
            try inputs.write("/roster.yaml", rosterText)
            let context =
                "seed \(seed) iteration \(iteration)\nhost: \(log.joined(separator: "\n  "))\nroster:\n\(rosterText)"

            let before = TreeSnapshot(dir.path)
            let passwdBefore = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data())
            let groupsBefore = AccountDatabase.group(root.read("/etc/group") ?? Data())
            let loaded = try Engine.load(
                InputPaths(roster: inputs.file("/roster.yaml"), settings: Fixture.settingsPath),
                root: root
            )
            let outcome = try Engine.apply(loaded, root: root, runner: ProcessRunner())
            #expect(outcome.report.failed.isEmpty, "\(context)\nfailed: \(outcome.report.failed.map { $0.error })")
            #expect(outcome.converged, "\(context)\nnot converged: \(outcome.verification.actionable.map(\.summary))")

            // Accounts and groups: all still there, unchanged, memberships only added.
            let passwdAfter = Dictionary(
                AccountDatabase.passwd(root.read("/etc/passwd") ?? Data()).map { ($0.name, $0) },
                uniquingKeysWith: { a, _ in a }
            )
            for p in passwdBefore {
                #expect(
                    passwdAfter[p.name] == p,
                    "\(context)\naccount \(p.name) changed: \(String(describing: passwdAfter[p.name]))"
                )
            }
            let groupsAfter = Dictionary(
                AccountDatabase.group(root.read("/etc/group") ?? Data()).map { ($0.name, $0) },
                uniquingKeysWith: { a, _ in a }
            )
            for g in groupsBefore {
                let a = groupsAfter[g.name]
                #expect(a?.gid == g.gid, "\(context)\ngroup \(g.name) is gone or renumbered")
                let lost = Set(g.members).subtracting(a?.members ?? [])
                #expect(lost.isEmpty, "\(context)\ngroup \(g.name) lost members \(lost.sorted())")
            }
            // Files, links and directories: every one that existed is still there with the same kind, bytes and
            // target; only a roster user's home may change, by tightening its mode or taking it over from root.
            let after = TreeSnapshot(dir.path)
            let rosterHomes = Set(loaded.roster.entries.filter { !$0.isAdopted }.map { "home/\($0.osUser)" })
            for (path, b) in before.entries where !databases.contains(path) {
                guard let a = after.entries[path] else {
                    Issue.record("\(context)\n/\(path) was removed (\(b))")
                    continue
                }
                if rosterHomes.contains(path) {
                    #expect(
                        a.kind == b.kind && a.mode == b.mode & ~0o077 && (a.uid == b.uid || b.uid == 0),
                        "\(context)\nhome /\(path): \(b) => \(a)"
                    )
                } else {
                    #expect(a == b, "\(context)\n/\(path) changed: \(b) => \(a)")
                }
            }
            let again = try Engine.plan(loaded, root: root).0
            #expect(again.isEmpty, "\(context)\nsecond plan: \(again.actionable.map(\.summary))")
        }
    }
}
