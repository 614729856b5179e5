import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

@Suite struct OwnedProcessTests {
    func status(_ uids: String, state: String = "S (sleeping)") -> Data {
        Data(
            "Name:\tworker\nUmask:\t0022\nState:\t\(state)\nTgid:\t7\nPid:\t7\nPPid:\t1\nUid:\t\(uids)\nGid:\t0\t0\t0\t0\n"
                .utf8
        )
    }

    @Test(arguments: [
        ("1001\t1001\t1001\t1001", true),  // all four
        ("0\t1001\t0\t1001", true),  // effective only (a setuid helper running as them)
        ("0\t0\t1001\t0", true),  // saved only: it can become them again at will
        ("1001\t0\t0\t0", true),  // real only
        ("0\t0\t0\t1001", false),  // file-system uid alone decides no signal permission, nor ownership
        ("1002\t1002\t1002\t1002", false),
    ])
    func selectsRealEffectiveOrSavedUid(uids: String, selected: Bool) throws {
        let p = try #require(OwnedProcess.parse(pid: 7, status: status(uids)))
        #expect(p.matches(1001) == selected)
        #expect(!p.isZombie)
    }

    @Test func zombiesAreLeftOutOfAFakeProcTreeUnlessAThreadRunsOn() throws {
        let s = try CapacitySandbox()
        for (pid, uids, state) in [
            (10, "1001\t1001\t1001\t1001", "S (sleeping)"), (11, "1001\t1001\t1001\t1001", "Z (zombie)"),
            (12, "0\t1001\t1001\t1001", "R (running)"), (13, "1002\t1002\t1002\t1002", "S (sleeping)"),
        ] {
            try s.write("/proc/\(pid)/status", String(decoding: status(uids, state: state), as: UTF8.self))
        }
        // 14: its first thread exited (the process reads as a zombie) while thread 15 runs on; 16: a real zombie.
        let uids = "1001\t1001\t1001\t1001"
        for (path, state) in [
            ("/proc/14/status", "Z (zombie)"), ("/proc/14/task/14/status", "Z (zombie)"),
            ("/proc/14/task/15/status", "S (sleeping)"), ("/proc/16/status", "Z (zombie)"),
            ("/proc/16/task/16/status", "Z (zombie)"),
        ] {
            try s.write(path, String(decoding: status(uids, state: state), as: UTF8.self))
        }
        try s.write("/proc/meminfo", "MemTotal: 1 kB\n")
        #expect(ProcReader(root: s.root).processes(ownedBy: 1001).map(\.pid) == [10, 12, 14])
    }
}

/// Ends real processes, all started by this test under a uid nothing else on the machine uses.
@Suite(.serialized) struct ProcessReaperTests {
    /// A uid no process has now (checked), far above any account.
    func unusedUid() -> Int {
        while true {
            let uid = Int.random(in: 3_000_000...3_900_000)
            if ProcReader(root: .system).processes(ownedBy: uid).isEmpty
                && ProcReader(root: .system).processes(ownedBy: uid + 1).isEmpty
            {
                return uid
            }
        }
    }

    func start(_ args: [String]) throws -> TestProcess {
        try TestProcess("/usr/bin/setpriv", args, captureOutput: false)
    }

    @Test func endsEveryProcessOfTheUidAndNothingElse() throws {
        let uid = unusedUid()
        let ids = ["--regid=\(uid)", "--clear-groups"]
        let mine = [
            try start(["--reuid=\(uid)"] + ids + ["/bin/sleep", "300"]),
            // A shell that forked two children: the children are found by uid, not by parentage.
            try start(["--reuid=\(uid)"] + ids + ["/bin/sh", "-c", "/bin/sleep 300 & /bin/sleep 301 & wait"]),
            // Effective uid only; the real uid stays root.
            try start(["--euid=\(uid)", "/bin/sleep", "302"]),
        ]
        let other = try start(["--reuid=\(uid + 1)", "--regid=\(uid + 1)", "--clear-groups", "/bin/sleep", "303"])
        defer {
            other.signal(SIGKILL)
            _ = other.wait()
        }
        let procs = ProcReader(root: .system)
        for _ in 0..<200 where procs.processes(ownedBy: uid).count < 5 { usleep(10_000) }
        let before = procs.processes(ownedBy: uid)
        try #require(before.count == 5, "\(before)")

        let ended = try ProcessReaper(procs: procs).endAll(uid: uid)
        #expect(Set(ended.map(\.pid)) == Set(before.map(\.pid)))
        #expect(procs.processes(ownedBy: uid).isEmpty)
        for p in mine { #expect(p.wait().signal == SIGKILL) }
        // The other uid's process still runs.
        #expect(other.isRunning)
        #expect(procs.processes(ownedBy: uid + 1).map(\.pid) == [Int(other.pid)])
    }

    @Test func rootIsNeverATarget() {
        #expect(throws: LifecycleError.self) { try ProcessReaper(procs: ProcReader(root: .system)).endAll(uid: 0) }
    }

    @Test func underARootPrefixNoProcessIsTouchedAndLingerIsAFile() throws {
        let s = try CapacitySandbox()
        try s.apply()
        let runner = RecordingRunner()
        let adapter = LifecycleAdapter(
            root: s.root,
            runner: runner,
            systemdRunning: false,
            accounts: AccountLookup(root: s.root)
        )
        #expect(throws: LifecycleError.self) { try adapter.endProcesses("alice", uid: s.uid("alice")) }
        try s.write("/var/lib/systemd/linger/alice", "")
        try adapter.disableLinger("alice")
        #expect(s.root.read("/var/lib/systemd/linger/alice") == nil)
        try adapter.disableLinger("alice")  // idempotent
        #expect(runner.commands.isEmpty)
    }
}
