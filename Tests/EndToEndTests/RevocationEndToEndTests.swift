import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// People who leave the roster lose their access on the next apply through the binary, even when a safety gate
/// refuses the rest of the run.
@Suite(.serialized) struct RevocationEndToEndTests {
    enum Gate: String, CaseIterable { case capacity, crossCheck }

    /// alice leaves the roster in the same run that a gate stops (onboarding dave over capacity, or k8s_users
    /// disagreeing about bob-dev): her entries leave the derived files anyway; nothing else changes.
    @Test(arguments: Gate.allCases)
    func leavingTheRosterRevokesAccessEvenWhenTheRunIsRefused(gate: Gate) throws {
        let h = try LifecycleHost()
        var roster = LifecycleHost.fullRoster.replacingOccurrences(
            of:
                "  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }\n",
            with: ""
        )
        switch gate {
        case .capacity:
            try h.root.write(
                "/proc/meminfo",
                "MemTotal: \(2 << 20) kB\nMemAvailable: \(1 << 20) kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
            )
            roster += "  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n"
        case .crossCheck:
            try h.root.write(
                "/etc/workstation/k8s_users.json",
                "{\"bob\": {\"role\": \"power-user\", \"namespaces\": []}}\n"
            )
            let settings = try String(contentsOfFile: h.settings, encoding: .utf8)
            try (settings + "kubernetes:\n  k8s_users_file: /etc/workstation/k8s_users.json\n").write(
                toFile: h.settings,
                atomically: true,
                encoding: .utf8
            )
        }
        try roster.write(toFile: h.roster, atomically: true, encoding: .utf8)
        #expect(h.root.read("/etc/ttyd-user-map")?.contains("alice.smith=alice") == true)
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(["apply"])
        #expect(r.status == (gate == .capacity ? 3 : 1), "\(r.stdout)\(r.stderr)")
        #expect(
            r.stderr.contains(gate == .capacity ? "refused by capacity" : "k8s_users says role power-user"),
            "\(r.stderr)"
        )
        #expect(
            r.stderr.contains("revoked anyway") && r.stderr.contains("(alice)")
                && r.stderr.contains("nothing else was changed"),
            "\(r.stderr)"
        )
        #expect(h.root.read("/etc/ttyd-user-map")?.contains("=alice\n") == false)
        #expect(h.root.read("/etc/t3-serve/dispatch.json")?.contains("\"alice\"") == false)
        #expect(h.root.read("/etc/ttyd-user-map")?.contains("bob=bob-dev") == true, "the others keep their access")
        #expect(h.root.read("/etc/ttyd-user-map")?.contains("dave") == false, "nobody is added")
        #expect(h.uid("dave") == nil)
        let after = TreeSnapshot(h.root.path)
        let changed = Set(before.changedPaths(to: after))
        #expect(
            changed.isSubset(of: [
                "etc/ttyd-user-map", "etc/t3-serve/dispatch.json", "var/lib/workstation/journal.jsonl",
            ]),
            "\(changed.sorted())"
        )
        // Again: nothing left to revoke, so nothing changes at all.
        let again = TreeSnapshot(h.root.path)
        let r2 = try h.run(["apply"])
        #expect(r2.stderr.contains("nothing was changed"), "\(r2.stderr)")
        #expect(TreeSnapshot(h.root.path) == again)
    }
}
