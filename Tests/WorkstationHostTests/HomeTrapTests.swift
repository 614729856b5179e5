import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// A temporary host root with the example roster applied (real useradd under --prefix): alice and bob-dev exist.
final class TrapRoot {
    let temp: TempRoot
    var dir: String { temp.path }
    let root: HostRoot
    let inputs: Inputs
    static var examples: URL { Repository.examples }

    init() throws {
        temp = try TempRoot("trap")
        root = HostRoot(temp.path)
        let paths = InputPaths(
            roster: Self.examples.appendingPathComponent("roster.yaml").path,
            settings: Self.examples.appendingPathComponent("workstation.yaml").path
        )
        inputs = try Engine.load(paths, root: root)
        try SandboxRoot.seed(root, settings: inputs.settings)
        let outcome = try Engine.apply(inputs, root: root, runner: ProcessRunner())
        guard outcome.succeeded else { throw TrapError("setup apply failed: \(outcome.report.failed.map(\.error))") }
    }

    func path(_ p: String) -> String { root.path(p) }
    func account(_ name: String) -> PasswdEntry {
        AccountDatabase.passwd(root.read("/etc/passwd")!).first { $0.name == name }!
    }
    func owner(_ name: String) -> HomeWriter.Owner {
        let a = account(name)
        return HomeWriter.Owner(uid: a.uid, gid: a.gid)
    }

    /// Every entry under the root except the `excluding` subtrees (host paths).
    func tree(excluding: [String]) -> TreeSnapshot { temp.snapshot(excluding: excluding) }

    /// Replaces `hostPath` (file, link or directory) with a symlink to `target`.
    func plantLink(_ hostPath: String, to target: String, owner: HomeWriter.Owner) throws {
        try? FileManager.default.removeItem(atPath: path(hostPath))
        #expect(symlink(target, path(hostPath)) == 0)
        lchown(path(hostPath), owner.uid, owner.gid)
    }

    func write(_ hostPath: String, _ text: String, owner: HomeWriter.Owner, mode: mode_t) throws {
        try FileManager.default.createDirectory(
            atPath: (path(hostPath) as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(hostPath)))
        chown(path(hostPath), owner.uid, owner.gid)
        chmod(path(hostPath), mode)
    }
}

struct TrapError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The traps of issue 3: a user plants a link before apply, or swaps a directory for a link between observe and
/// apply. Root must create, write, chown and chmod nothing outside that user's home, and report the refusal.
@Suite(.serialized) struct HomeTrapTests {
    /// workstation's own state and journal are the only things a run may write outside the homes.
    let own = ["/var/lib/workstation"]

    @Test func claudeLinkedToAnotherUsersClaudeIsRefused() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        // bob-dev's ~/.claude lost its skills link; alice points her ~/.claude at it.
        try FileManager.default.removeItem(atPath: r.path("/home/bob-dev/.claude/skills"))
        try r.plantLink("/home/alice/.claude", to: r.path("/home/bob-dev/.claude"), owner: alice)
        let before = r.tree(excluding: ["/home/alice", "/home/bob-dev/.claude/skills"] + own)
        let (plan, _, _) = try Engine.plan(r.inputs, root: r.root)
        let refusal = try #require(plan.changes.first { $0.id == "dir:/home/alice/.claude" })
        #expect(
            refusal.kind == .conflict && refusal.summary.contains("refused")
                && refusal.summary.contains("/home/alice/.claude")
        )
        #expect(!plan.actionable.contains { $0.user == "alice" })
        _ = try Engine.apply(r.inputs, root: r.root, runner: ProcessRunner())
        // bob-dev's own link comes back through bob-dev's change; nothing else outside alice's home moved.
        #expect(
            r.tree(excluding: ["/home/alice", "/home/bob-dev/.claude/skills"] + own).changedPaths(to: before).isEmpty
        )

        // Forced through the home-writer anyway: refused, bob-dev's .claude untouched.
        try FileManager.default.removeItem(atPath: r.path("/home/bob-dev/.claude/skills"))
        let again = r.tree(excluding: ["/home/alice"])
        #expect(
            throws: HomeWriteError.refused("/home/alice/.claude", "a path component is a symlink or not a directory")
        ) {
            try HomeWriter(root: r.root).createSymlink(
                home: "/home/alice",
                relative: ".claude/skills",
                target: "/srv/x",
                owner: alice
            )
        }
        #expect(throws: HomeWriteError.self) {
            try HomeWriter(root: r.root).createDirectory(
                home: "/home/alice",
                relative: ".claude/rules",
                owner: alice,
                mode: 0o700
            )
        }
        #expect(r.tree(excluding: ["/home/alice"]).changedPaths(to: again).isEmpty)
    }

    @Test func kubeLinkedToEtcIsRefused() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        // A file alice owns in /etc, loose, named like the secret file: the bait if root followed ~/.kube.
        try r.write("/etc/config", "apiVersion: v1\n", owner: alice, mode: 0o664)
        try r.plantLink("/home/alice/.kube", to: r.path("/etc"), owner: alice)
        let before = r.tree(excluding: ["/home/alice"] + own)
        let (plan, _, _) = try Engine.plan(r.inputs, root: r.root)
        let refusal = try #require(plan.changes.first { $0.id == "secret:/home/alice/.kube" })
        #expect(
            refusal.kind == .conflict
                && refusal.summary.contains("refused: /home/alice/.kube is a symlink to \(r.path("/etc"))")
        )
        #expect(!plan.actionable.contains { $0.user == "alice" })
        _ = try Engine.apply(r.inputs, root: r.root, runner: ProcessRunner())
        #expect(r.tree(excluding: ["/home/alice"] + own).changedPaths(to: before).isEmpty)

        let writer = HomeWriter(root: r.root)
        #expect(throws: HomeWriteError.refused("/home/alice/.kube", "a path component is a symlink or not a directory"))
        {
            try writer.tightenFile(home: "/home/alice", relative: ".kube/config", owner: alice, mode: 0o700)
        }
        #expect(throws: HomeWriteError.refused("/home/alice/.kube", "a path component is a symlink or not a directory"))
        {
            try writer.createFile(
                home: "/home/alice",
                relative: ".kube/new-config",
                content: Data("x".utf8),
                owner: alice,
                mode: 0o600
            )
        }
        #expect(r.tree(excluding: ["/home/alice"] + own).changedPaths(to: before).isEmpty)
    }

    @Test func kubeConfigLinkedToShadowIsRefused() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        try FileManager.default.createDirectory(atPath: r.path("/home/alice/.kube"), withIntermediateDirectories: true)
        chown(r.path("/home/alice/.kube"), alice.uid, alice.gid)
        try r.plantLink("/home/alice/.kube/config", to: r.path("/etc/shadow"), owner: alice)
        let before = r.tree(excluding: ["/home/alice"] + own)
        let (plan, _, _) = try Engine.plan(r.inputs, root: r.root)
        let refusal = try #require(plan.changes.first { $0.id == "secret:/home/alice/.kube/config" })
        #expect(
            refusal.kind == .conflict
                && refusal.summary.contains(
                    "refused: /home/alice/.kube/config is a symlink to \(r.path("/etc/shadow"))"
                )
        )
        _ = try Engine.apply(r.inputs, root: r.root, runner: ProcessRunner())
        #expect(r.tree(excluding: ["/home/alice"] + own).changedPaths(to: before).isEmpty)

        let writer = HomeWriter(root: r.root)
        #expect(throws: HomeWriteError.refused("/home/alice/.kube/config", "it is a symlink")) {
            try writer.tightenFile(home: "/home/alice", relative: ".kube/config", owner: alice, mode: 0o700)
        }
        #expect(throws: HomeWriteError.refused("/home/alice/.kube/config", "it is a symlink")) {
            try writer.createFile(
                home: "/home/alice",
                relative: ".kube/config",
                content: Data("x".utf8),
                owner: alice,
                mode: 0o600
            )
        }
        // A hard link to a file outside the home (same inode) is refused too.
        try FileManager.default.removeItem(atPath: r.path("/home/alice/.kube/config"))
        try r.write("/srv/alice-owned", "token\n", owner: alice, mode: 0o664)
        #expect(link(r.path("/srv/alice-owned"), r.path("/home/alice/.kube/config")) == 0)
        let withLink = r.tree(excluding: ["/home/alice"])
        #expect(throws: HomeWriteError.self) {
            try writer.tightenFile(home: "/home/alice", relative: ".kube/config", owner: alice, mode: 0o700)
        }
        #expect(r.tree(excluding: ["/home/alice"]).changedPaths(to: withLink).isEmpty)
        #expect(
            r.tree(excluding: ["/home/alice"] + own + ["/srv"]).changedPaths(to: before.excluding(["srv"])).isEmpty
        )
    }

    @Test func directorySwappedForLinkBetweenObserveAndApplyIsRefused() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        // Plan wants alice's skills link back and her loose settings.json tightened.
        try FileManager.default.removeItem(atPath: r.path("/home/alice/.claude/skills"))
        try r.write("/home/alice/.claude/settings.json", "{\"env\": {}}\n", owner: alice, mode: 0o664)
        let (plan, _, snapshot) = try Engine.plan(r.inputs, root: r.root)
        #expect(plan.actionable.map(\.id.description).contains("link:/home/alice/.claude/skills"))
        #expect(plan.actionable.map(\.id.description).contains("secret:/home/alice/.claude/settings.json"))

        // Between observe and apply alice swaps ~/.claude for a link to a directory outside her home holding a
        // settings.json she owns (the bait for a chmod) and no skills entry (the bait for a link).
        try FileManager.default.createDirectory(atPath: r.path("/srv/bait"), withIntermediateDirectories: true)
        try r.write("/srv/bait/settings.json", "{}\n", owner: alice, mode: 0o664)
        try FileManager.default.moveItem(
            atPath: r.path("/home/alice/.claude"),
            toPath: r.path("/home/alice/old-claude")
        )
        try r.plantLink("/home/alice/.claude", to: r.path("/srv/bait"), owner: alice)
        let before = r.tree(excluding: ["/home/alice"])

        let journal = try Journal(root: r.root, settings: r.inputs.settings, run: "trap")
        let executor = Executor(
            root: r.root,
            settings: r.inputs.settings,
            runner: ProcessRunner(),
            journal: journal,
            systemdRunning: false,
            state: snapshot.state
        )
        let report = executor.apply(Plan(changes: plan.actionable.filter { $0.user == "alice" }))
        #expect(report.applied.isEmpty)
        let errors = report.failed.map(\.error)
        #expect(
            errors.contains {
                $0.contains("refused to write /home/alice/.claude: a path component is a symlink")
                    && $0.contains("skills")
            }
        )
        #expect(errors.contains { $0.contains("refused to write /home/alice/.claude") && $0.contains("settings.json") })
        #expect(
            r.tree(excluding: ["/home/alice", "/var/lib/workstation"]).changedPaths(
                to: before.excluding(["var/lib/workstation"])
            ).isEmpty
        )
        let journalText = String(
            decoding: r.root.read(joinPath(r.inputs.settings.stateDirectory, "journal.jsonl")) ?? Data(),
            as: UTF8.self
        )
        #expect(journalText.contains("refused"))
    }

    @Test func homeWriterAcceptsWhatSkelAlreadyCopied() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        let writer = HomeWriter(root: r.root)
        // The example apply already made ~/.claude and its links: doing it again is a no-op, not an error.
        #expect(
            try writer.createDirectory(home: "/home/alice", relative: ".claude", owner: alice, mode: 0o700) == false
        )
        let target = r.inputs.settings.configBase + "/skills"
        #expect(
            try writer.createSymlink(home: "/home/alice", relative: ".claude/skills", target: target, owner: alice)
                == false
        )
        #expect(throws: HomeWriteError.exists("/home/alice/.claude/skills")) {
            try writer.createSymlink(
                home: "/home/alice",
                relative: ".claude/skills",
                target: "/elsewhere",
                owner: alice
            )
        }
        // A loose secret file alice owns is tightened, never loosened.
        try r.write("/home/alice/.vault-token", "hvs.x\n", owner: alice, mode: 0o644)
        #expect(
            try writer.tightenFile(home: "/home/alice", relative: ".vault-token", owner: alice, mode: 0o700) == 0o644
        )
        var st = stat()
        lstat(r.path("/home/alice/.vault-token"), &st)
        #expect(st.st_mode & 0o7777 == 0o600)
        // A file owned by someone else is refused, never chowned.
        try r.write("/home/alice/.claude.json", "{}\n", owner: HomeWriter.Owner(uid: 0, gid: 0), mode: 0o644)
        #expect(throws: HomeWriteError.refused("/home/alice/.claude.json", "it is owned by uid 0, not the user")) {
            try writer.tightenFile(home: "/home/alice", relative: ".claude.json", owner: alice, mode: 0o700)
        }
        lstat(r.path("/home/alice/.claude.json"), &st)
        #expect(st.st_uid == 0 && st.st_mode & 0o7777 == 0o644)
    }

    @Test func homeUnderAWritableParentIsRefused() throws {
        let r = try TrapRoot()
        let alice = r.owner("alice")
        chmod(r.path("/home"), 0o1777)
        defer { chmod(r.path("/home"), 0o755) }
        #expect(throws: HomeWriteError.self) {
            try HomeWriter(root: r.root).createDirectory(
                home: "/home/alice",
                relative: ".config",
                owner: alice,
                mode: 0o700
            )
        }
        #expect(!FileManager.default.fileExists(atPath: r.path("/home/alice/.config")))
    }
}
