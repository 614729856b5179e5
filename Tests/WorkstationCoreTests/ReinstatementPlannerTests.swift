import Foundation
import Testing

@testable import WorkstationCore

@Suite struct ReinstatementPlannerTests {
    @Test func plansTheRecordedLoginAndGroupsBackAsAdditive() throws {
        let roster = try Roster.parse(
            Data("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n".utf8),
            file: "roster.yaml",
            settings: Settings()
        )
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash")]
        snap.groups = [
            GroupEntry(name: "workstation", gid: 900, members: ["alice"]),
            GroupEntry(name: "workstation-power-user", gid: 901, members: ["alice"]),
            GroupEntry(name: "audio", gid: 29, members: []), GroupEntry(name: "docker", gid: 999, members: []),
        ]
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
        let changes = Planner(settings: Settings()).reinstatementChanges(d.users[0], snap)
        #expect(
            changes.map(\.id.description) == ["login:alice", "membership:alice:audio"],
            "docker is forbidden and never re-added"
        )
        #expect(changes.allSatisfy { $0.safety == .additive })
        #expect(changes[0].action == .restoreLogin(user: "alice", unlock: true, expireDays: nil))
    }
}
