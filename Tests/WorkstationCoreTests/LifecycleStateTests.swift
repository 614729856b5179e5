import Foundation
import Testing

@testable import WorkstationCore

@Suite struct LifecycleStateTests {
    @Test func anOlderStateFileStillDecodes() throws {
        let old = """
            {"accounts": {"alice": {"created": true, "uid": 1000}}, "added_memberships": {"alice": ["workstation"]},
             "created_groups": ["workstation"], "ports": {"t3-serve@": {"alice": 3774}}, "retired_uids": [1005], "version": 1}
            """
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        let s = try dec.decode(WorkstationState.self, from: Data(old.utf8))
        #expect(s.accounts["alice"]?.uid == 1000 && s.retiredUids == [1005] && s.ports["t3-serve@"]?["alice"] == 3774)
        #expect(s.offboarding.isEmpty && s.cutovers.isEmpty && s.secretFilesWritten.isEmpty && s.identities.isEmpty)
    }

    @Test func newRecordsRoundTrip() throws {
        var s = WorkstationState()
        var rec = OffboardingRecord(uid: 1000, home: "/home/alice")
        rec.cut = .init(
            time: 1,
            before: AccountBeforeState(
                groups: ["workstation"],
                shell: "/bin/bash",
                passwordLocked: false,
                expireDays: nil,
                units: ["t3-serve@alice.service": true],
                idpMembership: "not configured"
            ),
            completed: true
        )
        s.offboarding["alice"] = rec
        s.secretFilesWritten["alice"] = ["/home/alice/.vault-token"]
        let enc = JSONEncoder()
        enc.keyEncodingStrategy = .convertToSnakeCase
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try dec.decode(WorkstationState.self, from: enc.encode(s)) == s)
        #expect(rec.nextStage == .revoke)
    }

    @Test func aRetiredUidIsNeverAllocated() throws {
        let roster = try Roster.parse(
            Data("users:\n  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n".utf8),
            file: "roster.yaml",
            settings: Settings()
        )
        var snap = HostSnapshot()
        snap.state.retiredUids = [1000, 1001]
        let d = desire(roster: roster, settings: Settings(), snapshot: snap)
        #expect(d.users.first?.uid == 1002)
    }
}
