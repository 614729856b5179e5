import Foundation
import Testing

@testable import WorkstationCore

@Suite struct ReinstatementPlannerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        /// alice's tier in the roster she is back in; she was a power-user when she was cut.
        let tier: String
        /// What the plan adds back, in order.
        let expected: [String]
        let why: String
        var testDescription: String { "back as \(tier)" }
    }

    static let cases: [Case] = [
        Case(
            tier: "power-user",
            expected: ["login:alice", "membership:alice:audio"],
            why: "docker is forbidden and never re-added; her tier group she still holds"
        ),
        Case(
            tier: "namespace-owner",
            expected: ["login:alice", "membership:alice:audio", "membership:alice:workstation-namespace-owner"],
            why: "the power-user group of her old tier is not restored (it would be a pending revoke at once)"
        ),
    ]

    @Test(arguments: cases)
    func plansTheRecordedLoginAndGroupsBackAsAdditive(_ c: Case) throws {
        let namespaces = c.tier == "namespace-owner" ? ", namespaces: [team-alice]" : ""
        let roster = try Roster.parse(
            Data("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: \(c.tier)\(namespaces) }\n".utf8),
            file: "roster.yaml",
            settings: Settings()
        )
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash")]
        // The cut left her supplementary groups as they were; reinstatement restores what was removed since.
        snap.groups = [
            GroupEntry(name: "workstation", gid: 900, members: ["alice"]),
            GroupEntry(name: "workstation-power-user", gid: 901, members: []),
            GroupEntry(name: "workstation-namespace-owner", gid: 902, members: []),
            GroupEntry(name: "audio", gid: 29, members: []), GroupEntry(name: "docker", gid: 999, members: []),
        ]
        if c.tier == "power-user" { snap.groups[1].members = ["alice"] }
        snap.shadow["alice"] = ShadowEntry(name: "alice", passwordLocked: true, expireDays: 1)
        snap.state.accounts["alice"] = .init(uid: 1000, created: true)
        var rec = OffboardingRecord(uid: 1000, home: "/home/alice")
        rec.cut = .init(
            time: 1,
            before: AccountBeforeState(
                groups: ["workstation", "workstation-power-user", "audio", "docker"],
                shell: "/bin/bash",
                passwordLocked: false,
                expireDays: nil,
                units: [:],
                idpMembership: "not configured"
            ),
            completed: true
        )
        snap.state.offboarding["alice"] = rec
        let d = desire(roster: roster, settings: Settings(), snapshot: snap)
        let planner = Planner(settings: Settings())
        let changes = planner.reinstatementChanges(d.users[0], snap) + planner.membershipChanges(d.users[0], snap)
        #expect(changes.map(\.id.description) == c.expected, "\(c.why)")
        #expect(changes.allSatisfy { $0.safety == .additive })
        #expect(changes[0].action == .restoreLogin(user: "alice", unlock: true, expireDays: nil))
    }
}
