import Foundation
import Testing

@testable import WorkstationCore

@Suite struct LifecycleSettingsTests {
    @Test func defaultsWithoutTheSections() throws {
        let s = try Settings.parse(Data("config_base: /srv/base\n".utf8), file: "workstation.yaml")
        #expect(s.offboard.backupDirectory == "/var/backups/workstation")
        #expect(s.cutover.launchers == ["start-claude.sh"] && s.cutover.sharedCodeGroup == "code-shared")
        #expect(s.cutover.effectiveLeadTree == "/home/lead/code")
        #expect(s.idle.processNames == ["claude", "tmux", "t3"])
    }

    @Test func readsTheSections() throws {
        let yaml = """
            offboard: { backup_directory: /srv/backups }
            cutover: { launchers: [bin/start.sh], lead_home: /home/carol, lead_tree: /home/carol/src, shared_code_group: shared }
            idle: { process_names: [claude] }
            """
        let s = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
        #expect(s.offboard.backupDirectory == "/srv/backups")
        #expect(
            s.cutover.launchers == ["bin/start.sh"] && s.cutover.effectiveLeadTree == "/home/carol/src"
                && s.cutover.sharedCodeGroup == "shared"
        )
        #expect(s.idle.processNames == ["claude"])
    }

    @Test(arguments: [
        ("cutover: { launchers: [../x] }\n", "w.yaml:1:24: error: launcher '../x' must be a path relative to the home"),
        (
            "cutover: { lead_hom: /home/carol }\n",
            "w.yaml:1:12: error: unknown key 'lead_hom' in cutover; did you mean 'lead_home'?"
        ),
        (
            "offboard: { backup_directory: backups }\n",
            "w.yaml:1:31: error: offboard.backup_directory must be an absolute path"
        ),
        (
            "idle: { process_names: [a-very-long-process-name] }\n",
            "w.yaml:1:25: error: process name 'a-very-long-process-name' must be"
        ),
    ])
    func badSettingsAreLocated(yaml: String, expected: String) {
        do {
            _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }
}

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
