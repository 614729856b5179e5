import Foundation
import Testing

@testable import WorkstationCore

/// The intents a run records before it acts, settled against the host by the next run.
@Suite struct StateIntentsTests {
    /// A run killed while useradd ran: the orphaned tool finished, and the account is workstation's, not adopted.
    @Test func intentsOfAKilledRunAreSettledAgainstTheHost() {
        var state = WorkstationState()
        var i = WorkstationState.Intents()
        i.accounts = ["alice": .init(uid: 1001, created: true), "bob": .init(uid: 1002, created: true)]
        i.accountGroups = ["alice": ["workstation", "devs"]]
        i.groups = ["workstation", "never-made"]
        i.memberships = ["carol": ["ops"]]
        state.intents = i
        let passwd = [
            PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "carol", uid: 1003, gid: 1003, home: "/home/carol", shell: "/bin/bash"),
        ]
        let groups = [
            GroupEntry(name: "workstation", gid: 990, members: ["alice"]),
            GroupEntry(name: "devs", gid: 991, members: []),
            GroupEntry(name: "ops", gid: 992, members: ["carol"]),
        ]
        state.settleIntents(passwd: passwd, groups: groups)
        #expect(state.intents == nil)
        #expect(state.accounts["alice"] == .init(uid: 1001, created: true))
        #expect(state.accounts["bob"] == nil)
        #expect(state.addedMemberships["alice"] == ["workstation"])
        #expect(state.addedMemberships["carol"] == ["ops"])
        #expect(state.createdGroups == ["workstation"])
    }
}
