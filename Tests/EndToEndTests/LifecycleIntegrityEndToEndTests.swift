import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle through the built binary: revocation no gate holds back, an archive that leaves nothing of the
/// person's in /etc/systemd, retirement that outlives state.json, and a cutover dry run that always shows its steps.
@Suite(.serialized) struct LifecycleIntegrityEndToEndTests {
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

    /// The archive removes every file apply wrote for the person under /etc/systemd (unit and slice drop-ins) and
    /// the drop-in directories they leave empty; a directory holding someone else's file stays.
    @Test(arguments: [false, true])
    func archiveLeavesNoDropInsOrEmptyUnitDirectories(foreignFileInDropInDirectory: Bool) throws {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        let unitDir = "/etc/systemd/system/t3-serve@alice.service.d"
        let sliceDir = "/etc/systemd/system/user-\(uid).slice.d"
        // as apply writes it with budgets
        try h.root.write(sliceDir + "/50-workstation.conf", "[Slice]\nMemoryMax=4G\n")
        if foreignFileInDropInDirectory { try h.root.write(unitDir + "/10-local.conf", "[Service]\nNice=5\n") }
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        for stage in [["cut"], ["revoke"], ["archive", "--confirm", "alice"]] {
            let r = try h.run(["offboard", "alice", "--stage"] + stage)
            #expect(r.status == 0, "\(stage): \(r.stderr)")
        }
        var st = stat()
        #expect(lstat(h.root.file(unitDir + "/50-workstation.conf"), &st) != 0)
        #expect(lstat(h.root.file(sliceDir), &st) != 0, "the slice drop-in and its directory are gone")
        #expect((lstat(h.root.file(unitDir), &st) == 0) == foreignFileInDropInDirectory)
        if foreignFileInDropInDirectory { #expect(h.root.read(unitDir + "/10-local.conf") == "[Service]\nNice=5\n") }
        #expect(h.root.read("/etc/systemd/system/user-\(uid).slice.d/50-workstation.conf") == nil)
    }

    enum Loss: String, CaseIterable { case deleted, emptied, emptyObject }

    /// After an archive, state.json is lost (deleted, truncated to nothing is refused as unreadable so it is
    /// replaced, or replaced by `{}`): a new person still never gets the retired uid, recovered from the archive.
    @Test(arguments: Loss.allCases)
    func theRetirementOutlivesTheStateFile(loss: Loss) throws {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        for stage in [["cut"], ["revoke"], ["archive", "--confirm", "alice"]] {
            #expect(try h.run(["offboard", "alice", "--stage"] + stage).status == 0)
        }
        // userdel may keep the private group; drop it, so only the retirement guards the uid.
        let groups =
            (h.root.read("/etc/group") ?? "").split(separator: "\n").filter { !$0.contains(":\(uid):") }.joined(
                separator: "\n"
            ) + "\n"
        try h.root.write("/etc/group", groups)
        let state = h.root.file("/var/lib/workstation/state.json")
        switch loss {
        case .deleted: unlink(state)
        case .emptied, .emptyObject:
            try (loss == .emptied ? "{\"version\": 1}\n" : "{}\n").write(
                toFile: state,
                atomically: true,
                encoding: .utf8
            )
        }
        unlink(h.root.file("/var/lib/workstation/state.log"))
        try
            (LifecycleHost.fullRoster.replacingOccurrences(
                of:
                    "  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }\n",
                with: ""
            )
            + "  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n").write(
                toFile: h.roster,
                atomically: true,
                encoding: .utf8
            )
        let r = try h.run(["apply"])
        #expect(r.status == 0, "\(r.stderr)")
        let dave = try #require(h.uid("dave"))
        #expect(dave != uid, "dave got the retired uid \(uid)")
        #expect((try h.state()["retired_uids"] as? [Int])?.contains(uid) == true, "the retirement is on record again")
    }

    /// `cutover --dry-run` prints every step whether the person is idle or busy (and says what the gate would do);
    /// only a real run is refused.
    @Test(arguments: [(false, false), (true, false), (true, true)])
    func cutoverDryRunShowsTheStepsEvenWhenBusy(busy: Bool, force: Bool) throws {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        let home = h.root.file("/home/alice")
        #expect(symlink("/home/carol/code", home + "/code") == 0)
        lchown(home + "/code", uid_t(uid), gid_t(uid))
        if busy { try h.process(pid: 777, uid: uid, name: "tmux") }
        let before = TreeSnapshot(h.root.path)
        let dry = try h.run(["cutover", "alice", "--dry-run"] + (force ? ["--force"] : []))
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("remove the ~/code symlink"), "\(dry.stdout)")
        #expect(dry.stdout.contains("process 777 (tmux)") == busy, "\(dry.stdout)")
        if busy {
            #expect(
                dry.stdout.contains(force ? "idle gate overridden" : "without --force the cutover is refused"),
                "\(dry.stdout)"
            )
        }
        #expect(TreeSnapshot(h.root.path) == before)
        if busy && !force {
            let real = try h.run(["cutover", "alice"])
            #expect(real.status == 3 && real.stderr.contains("refused by idle gate"), "\(real.stderr)")
            #expect(TreeSnapshot(h.root.path) == before)
        }
    }
}
