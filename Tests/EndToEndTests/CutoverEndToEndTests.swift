import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct CutoverEndToEndTests {
    /// alice as an existing user of the old model: `~/code` links into carol's tree, a launcher that `cd`s there,
    /// `~/.claude` links into carol's home, and membership of the shared-code group.
    func oldModelHost() throws -> (LifecycleHost, Int) {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        let home = h.root.file("/home/alice")
        #expect(symlink("/home/carol/code", home + "/code") == 0)
        lchown(home + "/code", uid_t(uid), gid_t(uid))
        try h.root.write(
            "/home/alice/start-claude.sh",
            "#!/bin/sh\ncd /home/carol/code && exec claude \"$@\"\n# not /home/carol/code-old\n"
        )
        chown(home + "/start-claude.sh", uid_t(uid), gid_t(uid))
        chmod(home + "/start-claude.sh", 0o750)
        unlink(home + "/.claude/rules")
        #expect(symlink("/home/carol/.claude/rules", home + "/.claude/rules") == 0)
        lchown(home + "/.claude/rules", uid_t(uid), gid_t(uid))
        unlink(home + "/.claude/skills")
        mkdir(home + "/.claude/skills", 0o755)
        chown(home + "/.claude/skills", uid_t(uid), gid_t(uid))
        #expect(symlink("/home/carol/.claude/skills/file-issue", home + "/.claude/skills/file-issue") == 0)
        lchown(home + "/.claude/skills/file-issue", uid_t(uid), gid_t(uid))
        #expect(symlink("/srv/elsewhere", home + "/.claude/skills/mine") == 0)  // not into the lead's home: kept
        #expect(try TestProcess.accountTool("groupadd", prefix: h.root.path, ["--system", "code-shared"]).status == 0)
        #expect(
            try TestProcess.accountTool("usermod", prefix: h.root.path, ["-aG", "code-shared", "alice"]).status == 0
        )
        return (h, uid)
    }

    @Test func cutoverThenRollbackRestoresTheHomeTreeAndGroupsExactly() throws {
        let (h, _) = try oldModelHost()
        let home = h.root.file("/home/alice")
        let beforeTree = TreeSnapshot(home)
        let beforeGroups = h.groups("alice")
        #expect(beforeGroups.contains("code-shared"))

        let dry = try h.run(["cutover", "alice", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(
            dry.stdout.contains("remove the ~/code symlink")
                && dry.stdout.contains("remove alice from group code-shared"),
            "\(dry.stdout)"
        )
        #expect(TreeSnapshot(home) == beforeTree && h.groups("alice") == beforeGroups)

        unlink(h.root.file("/home/bob-dev/.claude/agents"))  // pending for bob: the cutover of alice must not touch it
        let r = try h.run(["cutover", "alice"])
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        #expect(r.stdout.contains("apply for alice: 1 change(s), converged"), "\(r.stdout)")
        var st = stat()
        #expect(lstat(h.root.file("/home/bob-dev/.claude/agents"), &st) != 0, "only alice's changes ran")
        #expect(
            lstat(home + "/code", &st) != 0 || st.st_mode & S_IFMT == S_IFDIR,
            "the ~/code symlink is gone (a clone, if apply makes one)"
        )
        let launcher = TreeSnapshot(home)["start-claude.sh"]
        #expect(
            launcher?.content.map { String(decoding: $0, as: UTF8.self) }
                == "#!/bin/sh\ncd $HOME/code && exec claude \"$@\"\n# not /home/carol/code-old\n"
        )
        #expect(launcher?.mode == 0o750 && launcher?.uid == beforeTree["start-claude.sh"]?.uid)
        #expect(
            TreeSnapshot(home)[".claude/rules"]?.linkTarget == "/srv/workstation/config-base/rules",
            "apply linked the managed base in"
        )
        #expect(TreeSnapshot(home)[".claude/skills/file-issue"] == nil)
        #expect(TreeSnapshot(home)[".claude/skills/mine"]?.linkTarget == "/srv/elsewhere")
        #expect(!h.groups("alice").contains("code-shared"))
        #expect(
            h.line("/etc/gshadow", "code-shared")?.hasSuffix(":") == true,
            "gshadow edited too: \(h.line("/etc/gshadow", "code-shared") ?? "")"
        )
        #expect(
            h.root.read("/var/lib/workstation/cutover/alice/launchers/start-claude.sh")
                == String(decoding: beforeTree["start-claude.sh"]!.content!, as: UTF8.self)
        )
        let saved = try #require(h.root.read("/var/lib/workstation/cutover/alice/rollback.json"))
        #expect(saved.contains("\"link_target\" : \"/home/carol/code\"") && saved.contains("code-shared"), "\(saved)")
        let rec = try #require((try h.state()["cutovers"] as? [String: Any])?["alice"] as? [String: Any])
        #expect(rec["completed"] as? Bool == true)
        #expect(try h.run(["cutover", "alice"]).stdout.contains("cut over already"))

        let back = try h.run(["rollback", "alice"])
        #expect(back.status == 0, "\(back.stderr)\n\(back.stdout)")
        let after = TreeSnapshot(home)
        for d in beforeTree.differences(to: after) { Issue.record("\(d)") }
        #expect(after == beforeTree)
        #expect(h.groups("alice") == beforeGroups)
        #expect(h.line("/etc/gshadow", "code-shared")?.hasSuffix(":alice") == true)
        let rolled = try #require((try h.state()["cutovers"] as? [String: Any])?["alice"] as? [String: Any])
        #expect(rolled["rolled_back"] != nil)
        let again = try h.run(["rollback", "alice"])
        #expect(again.status == 1 && again.stderr.contains("nothing to roll back"))
        let journal = h.root.read("/var/lib/workstation/journal.jsonl") ?? ""
        #expect(journal.contains("membership:alice:code-shared") && journal.contains("link:/home/alice/code"))
        #expect(journal.contains("\"change\":\"cutover:alice\"") && journal.contains("\"change\":\"rollback:alice\""))
    }

    @Test func rollbackMovesACloneThatReplacedCodeOutOfTheHome() throws {
        let (h, uid) = try oldModelHost()
        let home = h.root.file("/home/alice")
        let beforeTree = TreeSnapshot(home)
        #expect(try h.run(["cutover", "alice"]).status == 0)
        // What the clone step of apply leaves: a directory at ~/code owned by alice.
        if TreeSnapshot(home)["code"] == nil {
            try h.root.write("/home/alice/code/README.md", "clone\n")
            chown(home + "/code", uid_t(uid), gid_t(uid))
            chown(home + "/code/README.md", uid_t(uid), gid_t(uid))
        }
        let r = try h.run(["rollback", "alice"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            r.stdout.contains("the clone that replaced ~/code is kept at /var/lib/workstation/cutover/alice/clone-"),
            "\(r.stdout)"
        )
        #expect(TreeSnapshot(home) == beforeTree)
        let kept = try FileManager.default.contentsOfDirectory(
            atPath: h.root.file("/var/lib/workstation/cutover/alice")
        ).filter { $0.hasPrefix("clone-") }
        #expect(kept.count == 1)
    }

    @Test func cutoverRefusesABusyUserUnlessForced() throws {
        let (h, uid) = try oldModelHost()
        try h.process(pid: 777, uid: uid, name: "tmux")
        try h.process(pid: 778, uid: uid, name: "bash")
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(["cutover", "alice"])
        #expect(r.status == 3)
        #expect(
            r.stderr.contains("refused by idle gate") && r.stderr.contains("process 777 (tmux)")
                && !r.stderr.contains("778"),
            "\(r.stderr)"
        )
        #expect(TreeSnapshot(h.root.path) == before)

        try FileManager.default.removeItem(atPath: h.root.file("/proc/777"))
        try h.tcp(port: try h.t3Port("alice"), state: "01")
        let conn = try h.run(["cutover", "alice"])
        #expect(conn.status == 3 && conn.stderr.contains("connection to the t3 port"), "\(conn.stderr)")
        let forced = try h.run(["cutover", "alice", "--force", "--json"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(forced.stdout.utf8)) as? [String: Any])
        #expect(json["command"] as? String == "cutover" && json["dry_run"] as? Bool == false)
        #expect((json["applied"] as? [String])?.contains("membership:alice:code-shared") == true, "\(forced.stdout)")
        #expect(!h.groups("alice").contains("code-shared"))
    }

    @Test(arguments: [
        ["cutover", "alice"], ["rollback", "alice"], ["offboard", "alice", "--stage", "cut"],
    ])
    func badSettingsAreLocatedAndChangeNothing(command: [String]) throws {
        let (h, _) = try oldModelHost()
        try (try String(contentsOfFile: h.settings, encoding: .utf8)).replacingOccurrences(
            of: "lead_home:",
            with: "lead_hom:"
        )
        .write(toFile: h.settings, atomically: true, encoding: .utf8)
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(command)
        #expect(r.status == 1)
        #expect(
            r.stderr.contains(
                "-settings.yaml:6:3: error: unknown key 'lead_hom' in cutover; did you mean 'lead_home'?"
            ),
            "\(r.stderr)"
        )
        #expect(r.stderr.contains("nothing was changed"))
        #expect(TreeSnapshot(h.root.path) == before)
    }

    @Test func cutoverOfSomeoneNotInTheRosterIsAnError() throws {
        let h = try LifecycleHost()
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(["cutover", "carol"])
        #expect(r.status == 1 && r.stderr.contains("not a provisioned user in the roster"), "\(r.stderr)")
        #expect(TreeSnapshot(h.root.path) == before)
    }
}

extension CutoverEndToEndTests {
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
