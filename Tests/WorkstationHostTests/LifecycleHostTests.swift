import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

private func write(_ path: String, _ s: String) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent,
        withIntermediateDirectories: true
    )
    try s.write(toFile: path, atomically: false, encoding: .utf8)
}

@Suite struct IdleGateTests {
    @Test func readsProcessesByRealUidAndEstablishedConnectionsToThePort() throws {
        let temp = try TempRoot("lc")
        let dir = temp.path
        try write(dir + "/proc/10/status", "Name:\tclaude\nUid:\t1000\t1000\t1000\t1000\n")
        try write(dir + "/proc/10/comm", "claude\n")
        try write(dir + "/proc/11/status", "Name:\tsleep\nUid:\t1000\t0\t0\t0\n")
        try write(dir + "/proc/11/comm", "sleep\n")
        try write(dir + "/proc/12/status", "Name:\ttmux\nUid:\t1001\t1001\t1001\t1001\n")
        try write(dir + "/proc/12/comm", "tmux: server\n")
        try write(dir + "/proc/self/status", "Uid:\t1000\t1000\t1000\t1000\n")
        let head = "  sl  local_address rem_address   st tx_queue rx_queue\n"
        try write(
            dir + "/proc/net/tcp",
            head
                + "   0: 0100007F:0EBE 0100007F:C350 01 00000000:00000000\n"  // 3774, established
                + "   1: 00000000:0EBE 00000000:0000 0A 00000000:00000000\n"  // 3774, listen
                + "   2: 0100007F:0EBF 0100007F:C351 01 00000000:00000000\n"
        )  // 3775
        try write(
            dir + "/proc/net/tcp6",
            head + "   0: 00000000000000000000000001000000:0EBE 00000000000000000000000001000000:D431 01 0\n"
        )
        var settings = Settings()
        settings.idle.processNames = ["claude", "tmux"]
        let gate = IdleGate(root: HostRoot(dir), settings: settings)
        let procs = gate.processes(uid: 1000)
        #expect(procs.map(\.pid) == [10, 11])
        #expect(procs.map(\.interactive) == [true, false])
        #expect(
            gate.connections(port: 3774).map(\.remote) == ["0100007F:50000", "00000000000000000000000001000000:54321"]
        )
        var state = WorkstationState()
        state.ports["t3-serve@"] = ["alice": 3775, "bob": 3776]
        #expect(!gate.check(user: "alice", uid: 1000, state: state).isIdle)
        let bob = gate.check(user: "bob", uid: 1002, state: state)
        #expect(bob.isIdle && bob.processes.isEmpty)
        let onlyConn = gate.check(user: "alice", uid: 1003, state: state)
        #expect(
            !onlyConn.isIdle
                && onlyConn.busyLines == ["connection to the t3 port 3775: 0100007F:50001 -> 0100007F:3775"]
        )
    }
}

@Suite struct HomeWriterLifecycleTests {
    /// A root with /home/u owned by the current user (tests run as root: uid 0 owns it, owner 0).
    func home() throws -> (HomeWriter, TempRoot, HomeWriter.Owner) {
        let temp = try TempRoot("lc")
        try temp.createDirectory("/home/u")
        return (HomeWriter(root: HostRoot(temp.path)), temp, HomeWriter.Owner(uid: Int(getuid()), gid: Int(getgid())))
    }

    @Test func removeEntryUnlinksTheLinkNeverItsTarget() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        try write(dir + "/outside", "keep\n")
        symlink(dir + "/outside", dir + "/home/u/link")
        #expect(try w.removeEntry(home: "/home/u", relative: "link", owner: owner, onlySymlink: false))
        #expect(FileManager.default.contents(atPath: dir + "/outside") == Data("keep\n".utf8))
        #expect(try w.removeEntry(home: "/home/u", relative: "link", owner: owner, onlySymlink: false) == false)
        // A parent component that is a link is refused: nothing outside the home is removed.
        try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        try write(dir + "/elsewhere/secret", "x")
        symlink(dir + "/elsewhere", dir + "/home/u/dirlink")
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "dirlink/secret", owner: owner, onlySymlink: false)
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/elsewhere/secret"))
        try FileManager.default.createDirectory(atPath: dir + "/home/u/d", withIntermediateDirectories: true)
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "d", owner: owner, onlySymlink: false)
        }
        try write(dir + "/home/u/f", "x")
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "f", owner: owner, onlySymlink: true)
        }
    }

    @Test func replaceFileKeepsOwnerAndModeAndRefusesALink() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        try write(dir + "/home/u/start.sh", "old\n")
        chmod(dir + "/home/u/start.sh", 0o751)
        try w.replaceFile(home: "/home/u", relative: "start.sh", content: Data("new\n".utf8), owner: owner)
        var st = stat()
        stat(dir + "/home/u/start.sh", &st)
        #expect(st.st_mode & 0o7777 == 0o751)
        #expect(FileManager.default.contents(atPath: dir + "/home/u/start.sh") == Data("new\n".utf8))
        try write(dir + "/target", "keep\n")
        symlink(dir + "/target", dir + "/home/u/l.sh")
        #expect(throws: HomeWriteError.self) {
            try w.replaceFile(home: "/home/u", relative: "l.sh", content: Data("x".utf8), owner: owner)
        }
        #expect(FileManager.default.contents(atPath: dir + "/target") == Data("keep\n".utf8))
        #expect(
            (try FileManager.default.contentsOfDirectory(atPath: dir + "/home/u")).sorted() == ["l.sh", "start.sh"],
            "no temp file left"
        )
    }

    @Test func replaceSymlinkSwapsALinkButNotADirectory() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        symlink("/a", dir + "/home/u/l")
        try w.replaceSymlink(home: "/home/u", relative: "l", target: "/b", owner: owner, linkOwner: owner)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/home/u/l") == "/b")
        try FileManager.default.createDirectory(atPath: dir + "/home/u/d", withIntermediateDirectories: true)
        #expect(throws: HomeWriteError.self) {
            try w.replaceSymlink(home: "/home/u", relative: "d", target: "/b", owner: owner, linkOwner: owner)
        }
    }

    @Test(arguments: [
        ("cd /home/lead/code && claude\n", "cd $HOME/code && claude\n"),
        ("cd \"/home/lead/code\"\n", "cd \"$HOME/code\"\n"),
        ("cd /home/lead/code/sub\n", "cd $HOME/code/sub\n"),
        ("cd /home/lead/code-old\n", "cd /home/lead/code-old\n"),
        ("X=/home/lead/code", "X=$HOME/code"),
    ])
    func repointsOnlyTheWholeTreePath(before: String, after: String) {
        #expect(repointLauncher(before, from: "/home/lead/code") == after)
    }
}

/// A recording fake of the IdP gate-group hook.
final class RecordingGateHook: GateMembershipHook, @unchecked Sendable {
    var removed: [(String, String?)] = []
    var failRemoval = false
    func membership(osUser: String, identity: RecordedIdentity?) throws -> String { "member of T3 Users" }
    func removeFromGate(osUser: String, identity: RecordedIdentity?) throws {
        if failRemoval { throw CommandError.failed(command: ["idp"], status: 1, stderr: "403") }
        removed.append((osUser, identity?.authentikUser))
    }
}

@Suite(.serialized) struct OffboardingHookTests {
    func cutReadyHost() throws -> (HostRoot, Inputs, TempRoot) {
        let temp = try TempRoot("lc")
        let dir = temp.path
        let root = HostRoot(dir)
        try SandboxRoot.seed(root, settings: Settings())
        let full =
            "users:\n  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n"
        try write(dir + "/roster.yaml", full)
        _ = try Engine.apply(
            try Engine.load(InputPaths(roster: dir + "/roster.yaml", settings: nil), root: root),
            root: root,
            runner: ProcessRunner()
        )
        try write(dir + "/roster.yaml", "users:\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n")
        let inputs = try Engine.load(InputPaths(roster: dir + "/roster.yaml", settings: nil), root: root)
        _ = try Engine.apply(inputs, root: root, runner: ProcessRunner())
        return (root, inputs, temp)
    }

    @Test func cutCallsTheHookWithTheRecordedIdentityAndRecordsTheMembership() throws {
        let (root, inputs, temp) = try cutReadyHost()
        defer { withExtendedLifetime(temp) {} }
        let hook = RecordingGateHook()
        let dry = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            dryRun: true,
            idp: hook
        )
        #expect(dry.plan.changes.contains { $0.id == "idp:alice" } && hook.removed.isEmpty)
        let out = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(out.succeeded)
        #expect(hook.removed.map(\.0) == ["alice"] && hook.removed.map(\.1) == ["alice.smith"])
        let state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.before.idpMembership == "member of T3 Users")
        #expect(state.offboarding["alice"]?.cut?.completed == true)
    }

    @Test func aFailingHookLeavesTheCutIncompleteAndARerunKeepsTheFirstBeforeState() throws {
        let (root, inputs, temp) = try cutReadyHost()
        defer { withExtendedLifetime(temp) {} }
        let hook = RecordingGateHook()
        hook.failRemoval = true
        let first = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(!first.succeeded && first.report?.failed.map(\.change.id) == ["idp:alice"])
        var state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.completed == false)
        #expect(state.offboarding["alice"]?.cut?.before.units == ["t3-serve@alice.service": true])
        hook.failRemoval = false
        let second = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(second.succeeded)
        state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.completed == true)
        #expect(
            state.offboarding["alice"]?.cut?.before.units == ["t3-serve@alice.service": true],
            "the before-state of the first attempt is kept"
        )
    }
}
