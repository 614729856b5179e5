import Foundation
import Testing

@testable import WorkstationCore

/// Offboarding that loses nothing and leaves no access, the pure parts: archive names and the uids they retire,
/// what revoke deletes, what archive removes, people who leave the roster dropped from the derived files even when
/// the run is refused, and the revocation steps.
@Suite struct OffboardingPlanTests {

    @Test(
        arguments: [
            ("alice-1001-20250102T030405Z.tar.gz", 1001),
            ("alice-1001-20250102T030405Z.tar.gz.sha256", 1001),
            ("alice-1001-20250102T030405Z.tar.gz.partial", 1001),
            ("bob-dev-1002-20250102T030405Z.tar.gz", 1002),  // a '-' in the os_user
            ("a-b-c-60000-20991231T235959Z.tar.gz", 60000),
            ("alice-1001-20250102T030405Z.tar", nil),
            ("alice-20250102T030405Z.tar.gz", nil),  // no uid
            ("alice-x1001-20250102T030405Z.tar.gz", nil),
            ("alice-1001-2025-01-02.tar.gz", nil),  // not the stamp
            ("-1001-20250102T030405Z.tar.gz", nil),  // no name
            ("alice-0-20250102T030405Z.tar.gz", nil),  // never root
            ("notes.txt", nil),
        ] as [(String, Int?)]
    )
    func archiveNamesCarryTheRetiredUid(name: String, uid: Int?) {
        #expect(OffboardingRecord.Archive.retiredUid(fromFileName: name) == uid)
    }

    @Test func archiveNameRoundTrips() {
        for (user, uid) in [("alice", 1001), ("bob-dev", 1002), ("x", 59999)] {
            let name = OffboardingRecord.Archive.fileName(user: user, uid: uid, stamp: "20250102T030405Z")
            #expect(OffboardingRecord.Archive.retiredUid(fromFileName: name) == uid)
        }
    }

    @Test func aRetiredUidFromTheArchivesIsNeverHandedOut() {
        var snap = LifecycleFixture.host()
        snap.passwd.removeAll { $0.name == "alice" }
        snap.state.retiredUids = [1000, 1001]
        let d = desire(
            roster: Roster(entries: [
                RosterEntry(osUser: "carl", authentikUser: "carl", k8sUser: "carl", tier: .powerUser)
            ]),
            settings: Settings(),
            snapshot: snap
        )
        #expect(d.users.first?.uid == 1003, "1000 and 1001 retired, 1002 taken")
    }

    @Test(
        arguments: [
            ([:], ["delete"], ["/home/alice/.claude.json"]),
            (["/home/alice/.claude.json": "changed since workstation wrote it"], ["kept"], []),
        ] as [([String: String], [String], [String])]
    )
    func revokeDeletesOnlyUnchangedFiles(kept: [String: String], kinds: [String], deleted: [String]) {
        var snap = LifecycleFixture.host()
        snap.state.secretFilesWritten["alice"] = ["/home/alice/.claude.json"]
        let changes = Planner(settings: Settings()).revokeChanges(user: "alice", observed: snap, kept: kept)
        #expect(changes.map { $0.action == nil ? "kept" : "delete" } == kinds)
        let removed = changes.compactMap { c -> String? in
            if case .removeHomeEntry(_, let p, _)? = c.action { return p }
            return nil
        }
        #expect(removed == deleted)
        for c in changes where c.action == nil {
            #expect(
                c.kind == .conflict && c.summary.contains("changed since workstation wrote it")
                    && c.reason?.contains("archive") == true
            )
        }
    }

    @Test(arguments: [
        ([String](), 2),  // account + archive only: no drop-in present
        (["/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf"], 3),
        (
            [
                "/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf",
                "/etc/systemd/system/user-1001.slice.d/50-workstation.conf",
            ], 4
        ),
        (["/etc/systemd/system/user-1001.slice.d/50-workstation.conf"], 3),
    ])
    func archiveRemovesEveryDropInWritten(present: [String], count: Int) {
        var extra: [String: PathState] = [:]
        for p in present { extra[p] = PathState(kind: .file, mode: 0o644) }
        let changes = Planner(settings: Settings()).archiveChanges(
            user: "alice",
            uid: 1001,
            home: "/home/alice",
            archive: "/var/backups/a.tar.gz",
            observed: LifecycleFixture.host(extra)
        )
        #expect(changes.count == count)
        let removed = changes.compactMap { c -> String? in
            if case .removeSystemFile(let p)? = c.action { return p }
            return nil
        }
        #expect(removed == present)
        #expect(
            changes.dropFirst(2).allSatisfy { $0.dependsOn == ["account:alice"] && $0.summary.contains("once empty") }
        )
    }

    @Test(arguments: [
        // (ttyd map lines, roster keeps, admins, dropped)
        (["alice.smith=alice", "bob=bob-dev"], ["alice"], [String](), ["bob-dev"]),
        (["alice.smith=alice", "bob=bob-dev"], ["alice", "bob-dev"], [String](), [String]()),
        (["alice.smith=alice", "carol=carol"], ["alice"], ["carol"], [String]()),  // an admin is never dropped
        // a pair the roster no longer routes
        (["alice.smith=alice", "mallory=alice"], ["alice"], [String](), ["alice"]),
        ([String](), ["alice"], [String](), [String]()),
    ])
    func leaversAreDroppedWithoutAddingAnyone(
        lines: [String],
        keep: [String],
        admins: [String],
        dropped: [String]
    ) throws {
        var settings = Settings()
        settings.accounts.adminGroup = "sudo"
        var snap = LifecycleFixture.host()
        snap.groups = [GroupEntry(name: "sudo", gid: 27, members: admins)]
        let ttyd = Data(("# generated\n" + lines.map { $0 + "\n" }.joined()).utf8)
        snap.paths[settings.derived.ttydUserMap] = PathState(kind: .file, mode: 0o644, content: ttyd)
        var users: [String: DispatchMap.User] = [:]
        for (i, l) in lines.enumerated() {
            let kv = l.split(separator: "=").map(String.init)
            users[kv[0]] = DispatchMap.User(osUser: kv[1], port: 3774 + i, ports: ["t3-serve@": 3774 + i])
        }
        snap.paths[settings.derived.dispatch] = PathState(
            kind: .file,
            mode: 0o644,
            content: DispatchMap(users: users).encoded()
        )
        // The roster now also onboards "dave" (who must not appear: nothing is added).
        let entries =
            [LifecycleFixture.alice, LifecycleFixture.bob].filter { keep.contains($0.osUser) }
            + [RosterEntry(osUser: "dave", authentikUser: "dave", k8sUser: "dave", tier: .powerUser)]
        let d = desire(roster: Roster(entries: entries), settings: settings, snapshot: snap)
        let (changes, who) = Planner(settings: settings).revocationOnlyChanges(d, snap)
        #expect(who == dropped)
        #expect(changes.count == (dropped.isEmpty ? 0 : 2))
        for c in changes {
            guard case .writeFile(let path, let content, _)? = c.action else {
                Issue.record("no write")
                continue
            }
            let text = String(decoding: content, as: UTF8.self)
            #expect(!text.contains("dave"), "\(path) gained someone: \(text)")
            for l in lines where path == settings.derived.ttydUserMap {
                let os = String(l.split(separator: "=")[1])
                let ak = String(l.split(separator: "=")[0])
                let stays = admins.contains(os) || d.identities.contains { $0.authentikUser == ak && $0.osUser == os }
                #expect(text.contains(l + "\n") == stays, "\(l) in \(text)")
            }
        }
    }

    @Test(arguments: [
        (true as Bool?, false, true),
        (false as Bool?, true, false),
        (nil as Bool?, true, true),
    ])
    func revokeStepsNameTheOwnerOfTheBindings(inK8sUsers: Bool?, kubectl: Bool, k8sUsers: Bool) {
        let steps = Planner(settings: Settings()).clusterRevocationSteps(
            user: "bob_dev",
            identity: RecordedIdentity(
                authentikUser: "bob",
                k8sUser: "bob",
                tier: "namespace-owner",
                namespaces: ["team-bob"]
            ),
            inK8sUsers: inK8sUsers
        )
        let command =
            "kubectl delete rolebindings,clusterrolebindings --all-namespaces -l app.kubernetes.io/managed-by=workstation,workstation/os-user=bob-dev"
        #expect(steps.contains { $0.hasSuffix(command) } == kubectl, "\(steps)")
        #expect(steps.contains { $0.contains("remove the k8s_users entry 'bob'") } == k8sUsers, "\(steps)")
    }
}
