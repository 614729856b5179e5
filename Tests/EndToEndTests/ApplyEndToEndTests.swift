import Foundation
import Testing
import WorkstationTestSupport

/// The main job end to end: the built binary, run as root, against temp roots with the real shadow utilities
/// and `systemctl --root`.
@Suite(.serialized) struct ApplyEndToEndTests {
    /// Applies the example roster into a fresh root and returns it.
    func converged() throws -> TempRoot {
        let root = try TempRoot()
        let r = try CLI.run([
            "apply", "--roster", Inputs.roster, "--settings", Inputs.settings, "--root", root.path, "--init-root",
        ])
        #expect(r.status == 0, "apply failed: \(r.stderr)")
        return root
    }

    func args(_ cmd: String, _ root: TempRoot, roster: String = Inputs.roster, _ extra: String...) -> [String] {
        [cmd, "--roster", roster, "--settings", Inputs.settings, "--root", root.path] + extra
    }

    @Test func firstApplyCreatesEverythingAndSecondPlanIsEmpty() throws {
        let root = try converged()
        let passwd = try #require(root.read("/etc/passwd"))
        #expect(passwd.contains("alice:x:1000:1000:alice@example.org:/home/alice:/bin/bash\n"))
        #expect(passwd.contains("bob-dev:x:1001:1001:bob@example.org:/home/bob-dev:/bin/bash\n"))
        #expect(!passwd.contains("carol"), "the admin is adopted, never created")
        let group = try #require(root.read("/etc/group"))
        #expect(group.contains("workstation:x:999:alice,bob-dev\n"))
        #expect(group.contains("workstation-power-user:x:998:alice\n"))
        #expect(group.contains("workstation-namespace-owner:x:997:bob-dev\n"))
        #expect(group.contains("sudo:x:27:\n"))
        for (user, uid) in [("alice", 1000), ("bob-dev", 1001)] {
            var st = stat()
            #expect(lstat(root.file("/home/\(user)"), &st) == 0)
            #expect(st.st_mode & 0o7777 == 0o700 && st.st_uid == uid && st.st_gid == uid)
            for item in ["skills", "rules", "agents", "commands"] {
                let link = root.file("/home/\(user)/.claude/\(item)")
                #expect(
                    try FileManager.default.destinationOfSymbolicLink(atPath: link)
                        == "/srv/workstation/config-base/\(item)"
                )
                #expect(lstat(link, &st) == 0 && st.st_uid == uid)
            }
            #expect(root.exists("/etc/systemd/system/multi-user.target.wants/t3-serve@\(user).service"))
            let dropIn = try #require(root.read("/etc/systemd/system/t3-serve@\(user).service.d/50-workstation.conf"))
            #expect(dropIn.contains("Slice=user-\(uid).slice\n"))
        }
        #expect(root.read("/etc/ttyd-user-map")?.hasSuffix("alice.smith=alice\nbob=bob-dev\ncarol=carol\n") == true)
        // The home is seeded from the root's skeleton, not the machine's.
        #expect(root.read("/home/alice/.bash_logout") == root.read("/etc/skel/.bash_logout"))
        #expect(root.read("/home/alice/.bashrc")?.contains("PS1='\\u@\\h:\\w\\$ '") == true)
        let dispatch = try #require(root.read("/etc/t3-serve/dispatch.json"))
        #expect(dispatch.contains("\"os_user\" : \"bob-dev\""))
        let journal = try #require(root.read("/var/lib/workstation/journal.jsonl"))
        #expect(journal.split(separator: "\n").count == 23)
        #expect(
            journal.split(separator: "\n").allSatisfy {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil
            }
        )
        #expect(root.read("/var/lib/workstation/state.json")?.contains("\"created\" : true") == true)

        let second = try CLI.run(args("plan", root, "--detailed-exitcode"))
        #expect(second.status == 0, "\(second.stdout)")
        #expect(second.stdout.contains("No changes"))
        let again = try CLI.run(args("apply", root, "--json"))
        #expect(again.status == 0)
        #expect(again.stdout.contains("\"processes_spawned\" : 0"))
    }

    @Test func planExitsTwoWhenChangesArePendingAndChangesNothing() throws {
        let root = try TempRoot()
        _ = try CLI.run(["apply", "--roster", "/nonexistent", "--root", root.path, "--init-root"])
        let before = root.snapshot()
        let plan = try CLI.run(args("plan", root, "--detailed-exitcode"))
        #expect(plan.status == 2)
        #expect(plan.stdout.contains("+ create account alice (uid 1000, tier power-user) [additive]"))
        #expect(root.snapshot() == before, "plan must not change anything")
    }

    @Test func removingAnEntryDropsItFromDerivedFilesAndKeepsTheAccount() throws {
        let root = try converged()
        let without = root.file("/roster-without-bob.yaml")
        let text = try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("bob-dev:")
        }.joined(separator: "\n")
        try text.write(toFile: without, atomically: true, encoding: .utf8)
        let plan = try CLI.run(args("plan", root, roster: without))
        #expect(plan.stdout.contains("! bob-dev left the roster: offboard pending"))
        #expect(
            plan.stdout.contains(
                "run: workstation offboard bob-dev --stage cut --roster \(without) --settings \(Inputs.settings) --root \(root.path)\n"
            ),
            "a suggested command acts on the same root: \(plan.stdout)"
        )
        // Spelled with `.` and `..`, the inputs and root are printed absolute and normalised, as above.
        let dir = (without as NSString).deletingLastPathComponent
        let name = (without as NSString).lastPathComponent
        let spelled = try CLI.run([
            "plan", "--roster", "\(dir)/./../\((dir as NSString).lastPathComponent)/\(name)", "--settings",
            Inputs.settings, "--root", root.path + "/.",
        ])
        #expect(
            spelled.stdout.contains(
                "run: workstation offboard bob-dev --stage cut --roster \(without) --settings \(Inputs.settings) --root \(root.path)\n"
            ),
            "\(spelled.stdout)\(spelled.stderr)"
        )
        let r = try CLI.run(args("apply", root, roster: without))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(root.read("/etc/ttyd-user-map")?.contains("bob") == false)
        #expect(root.read("/etc/t3-serve/dispatch.json")?.contains("bob") == false)
        #expect(root.read("/etc/passwd")?.contains("bob-dev:x:1001") == true)
        #expect(FileManager.default.fileExists(atPath: root.file("/home/bob-dev/.claude")))
        #expect(root.exists("/etc/systemd/system/multi-user.target.wants/t3-serve@bob-dev.service"))
        let again = try CLI.run(args("plan", root, roster: without, "--detailed-exitcode"))
        #expect(again.status == 0)
    }

    @Test func invalidRosterExitsOneAndLeavesTheRootByteIdentical() throws {
        let root = try converged()
        let bad = root.file("/bad-roster.yaml")
        try
            "users:\n  Alice: { authentik_user: a, k8s_user: a, tier: power-user }\n  bob: { authentik_user: b, k8s_user: b, tier: boss }\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let before = root.snapshot()
        for cmd in ["apply", "plan", "validate"] {
            let r = try CLI.run(args(cmd, root, roster: bad))
            #expect(r.status == 1)
            #expect(r.stderr.contains("bad-roster.yaml:2:3: error: os_user 'Alice' contains upper-case letters"))
            #expect(
                r.stderr.contains(
                    "bad-roster.yaml:3:48: error: tier must be one of admin, power-user, namespace-owner, got 'boss'"
                )
            )
            #expect(r.stderr.contains("nothing was changed"))
        }
        #expect(root.snapshot() == before)
    }

    @Test func preexistingStateSurvivesApplyUntouched() throws {
        let root = try TempRoot()
        // Seed, then plant a live user's state: an account with a hand-made group, a real skills directory, a port.
        let seed = try CLI.run(["apply", "--roster", "/nonexistent", "--root", root.path, "--init-root"])
        #expect(seed.status == 1)
        #expect(FileManager.default.fileExists(atPath: root.file("/etc/passwd")))
        let pre = try TestProcess.accountTool(
            "useradd",
            prefix: root.path,
            ["-m", "-U", "-u", "1200", "-G", "video", "alice"]
        )
        #expect(pre.status == 0, "\(pre.stderr)")
        try FileManager.default.createDirectory(
            atPath: root.file("/home/alice/.claude/skills/mine"),
            withIntermediateDirectories: true
        )
        try "my own skill\n".write(
            toFile: root.file("/home/alice/.claude/skills/mine/SKILL.md"),
            atomically: true,
            encoding: .utf8
        )
        try root.write("/etc/t3-serve/dispatch.json", #"{"alice.smith": {"os_user": "alice", "port": 3799}}"#)
        let skillBefore = root.snapshot().under("home/alice/.claude/skills")

        let r = try CLI.run(args("apply", root))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("? /home/alice/.claude/skills is a real directory; kept"))
        #expect(root.read("/etc/group")?.contains("video:x:44:alice\n") == true, "hand-made membership kept")
        #expect(root.read("/etc/group")?.contains("workstation:x:999:alice,bob-dev\n") == true)
        #expect(root.snapshot().under("home/alice/.claude/skills") == skillBefore)
        #expect(root.read("/etc/t3-serve/dispatch.json")?.contains("\"port\" : 3799") == true)
        #expect(
            root.read("/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf")?.contains("T3CODE_PORT=3799")
                == true
        )
        #expect(root.read("/etc/passwd")?.contains("alice:x:1200:1200") == true)
        let plan = try CLI.run(args("plan", root, "--detailed-exitcode"))
        #expect(plan.status == 0, "conflicts are reported, not pending: \(plan.stdout)")
    }

    @Test func lockoutGuardRefusesWithExitThreeAndChangesNothing() throws {
        let root = try converged()
        // carol holds admin rights on the host.
        let group = try #require(root.read("/etc/group"))
        try root.write("/etc/group", group.replacingOccurrences(of: "sudo:x:27:\n", with: "sudo:x:27:carol\n"))
        let without = root.file("/roster-without-carol.yaml")
        let text = try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("carol:")
        }.joined(separator: "\n")
        try text.write(toFile: without, atomically: true, encoding: .utf8)
        let before = root.snapshot()
        let r = try CLI.run(args("apply", root, roster: without))
        #expect(r.status == 3)
        #expect(r.stderr.contains("refused by lockout guard: this run would drop 'carol'"))
        #expect(root.snapshot() == before)
    }

    @Test func aSecondApplyWaitsForTheLockThenExitsOne() throws {
        let root = try converged()
        let settings = root.file("/ws.yaml")
        try (try String(contentsOfFile: Inputs.settings, encoding: .utf8) + "lock_timeout: 1\n").write(
            toFile: settings,
            atomically: true,
            encoding: .utf8
        )
        let fd = open(root.file("/var/lib/workstation/lock"), O_RDWR)
        #expect(fd >= 0)
        #expect(flock(fd, LOCK_EX) == 0)
        defer { close(fd) }
        let r = try CLI.run(["apply", "--roster", Inputs.roster, "--settings", settings, "--root", root.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("another workstation run holds"))
    }

    @Test func aDirectoryThatIsNotAHostRootIsRefusedAndLeftAlone() throws {
        let root = try TempRoot()
        for cmd in ["apply", "plan"] {
            let r = try CLI.run(args(cmd, root))
            #expect(r.status == 1)
            #expect(r.stderr.contains("has no etc/passwd, so it is not a host root; check --root, or pass --init-root"))
        }
        #expect(root.snapshot().isEmpty, "nothing was created: \(root.snapshot().paths)")
    }

    @Test func missingRosterIsAClearError() throws {
        let root = try TempRoot()
        let r = try CLI.run(["plan", "--root", root.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot read the roster file \(root.path)/etc/workstation/roster.yaml"))
    }
}
