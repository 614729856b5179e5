import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// The idle gate judged on synthetic `/proc` trees: the person's own managed instance is never "busy", and what
/// cannot be read fails closed.
@Suite struct IdleGateTableTests {
    /// One synthetic process of uid 1001: name, and the cgroup v2 path (nil: no cgroup file).
    struct Proc {
        var pid: Int
        var name: String
        var cgroup: String?
    }

    enum Damage: String, CaseIterable { case none, procIsAFile, statusIsADirectory, tcpIsADirectory, noTcpTable }

    static let t3 = "0::/user.slice/user-1001.slice/t3-serve@alice.service\n"

    @Test(arguments: [
        // (processes, damage, idle, busy lines expected to contain)
        ([Proc(pid: 10, name: "t3", cgroup: t3)], Damage.none, true, [String]()),
        // spawned by the web UI
        ([Proc(pid: 10, name: "t3", cgroup: t3), Proc(pid: 11, name: "claude", cgroup: t3)], .none, true, []),
        (
            [Proc(pid: 10, name: "t3", cgroup: "0::/user.slice/user-1001.slice/session-3.scope\n")], .none, false,
            ["process 10 (t3)"]
        ),
        (
            [Proc(pid: 10, name: "t3", cgroup: "0::/system.slice/t3-serve@bob.service\n")], .none, false,
            ["process 10 (t3)"]
        ),  // not hers
        ([Proc(pid: 10, name: "t3", cgroup: nil)], .none, false, ["process 10 (t3)"]),
        (
            [
                Proc(
                    pid: 12,
                    name: "tmux",
                    cgroup: "0::/user.slice/user-1001.slice/user@1001.service/app.slice/tmux-spawn.scope\n"
                )
            ], .none, false, ["process 12 (tmux)"]
        ),
        ([Proc(pid: 10, name: "t3", cgroup: t3)], .procIsAFile, false, ["/proc", "fails closed"]),
        ([Proc(pid: 10, name: "t3", cgroup: t3)], .statusIsADirectory, false, ["/proc/99/status", "fails closed"]),
        ([Proc(pid: 10, name: "t3", cgroup: t3)], .tcpIsADirectory, false, ["/proc/net/tcp", "fails closed"]),
        // a prefix's synthetic /proc: nothing to read
        ([Proc(pid: 10, name: "t3", cgroup: t3)], .noTcpTable, true, []),
    ])
    func managedInstanceIsNotBusyAndUnreadableFailsClosed(
        procs: [Proc],
        damage: Damage,
        idle: Bool,
        busy: [String]
    ) throws {
        let temp = try TempRoot("idle")
        let dir = temp.path
        func write(_ rel: String, _ text: String) throws { try temp.write(rel, text) }
        if damage == .procIsAFile {
            try write("/proc", "not a directory\n")
        } else {
            for p in procs {
                try write("/proc/\(p.pid)/status", "Name:\t\(p.name)\nUid:\t1001\t1001\t1001\t1001\n")
                try write("/proc/\(p.pid)/comm", "\(p.name)\n")
                if let c = p.cgroup { try write("/proc/\(p.pid)/cgroup", c) }
            }
            try write("/proc/20/status", "Name:\ttmux\nUid:\t1002\t1002\t1002\t1002\n")  // bob's, never counted
            if damage == .statusIsADirectory {
                try FileManager.default.createDirectory(
                    atPath: dir + "/proc/99/status",
                    withIntermediateDirectories: true
                )
            }
            let head = "  sl  local_address rem_address   st tx_queue rx_queue\n"
            switch damage {
            case .tcpIsADirectory:
                try FileManager.default.createDirectory(
                    atPath: dir + "/proc/net/tcp",
                    withIntermediateDirectories: true
                )
            case .noTcpTable: break
            // t3 listening only
            default: try write("/proc/net/tcp", head + "   0: 0100007F:0EBE 00000000:0000 0A 00000000:00000000\n")
            }
        }
        var settings = Settings()
        settings.idle.processNames = ["claude", "tmux", "t3"]
        var state = WorkstationState()
        state.ports["t3-serve@"] = ["alice": 3774]
        let report = IdleGate(root: HostRoot(dir), settings: settings).check(user: "alice", uid: 1001, state: state)
        #expect(report.isIdle == idle, "\(report.busyLines)")
        for b in busy { #expect(report.busyLines.contains { $0.contains(b) }, "\(b) not in \(report.busyLines)") }
        if idle { #expect(report.busyLines.isEmpty) }
        // Processes are still listed (the archive stage requires none at all, the managed instance included).
        if damage == .none { #expect(report.processes.map(\.pid) == procs.map(\.pid)) }
    }

    @Test(
        arguments: [
            ("0::/user.slice/user-1001.slice/t3-serve@alice.service\n", "t3-serve@alice.service"),
            ("12:pids:/x\n0::/system.slice/t3-serve@alice.service\n", "t3-serve@alice.service"),
            ("0::/user.slice/user-1001.slice/session-3.scope\n", nil),
            ("0::/\n", nil),
            ("", nil),
        ] as [(String, String?)]
    )
    func unitOfACgroupLine(text: String, unit: String?) {
        #expect(IdleGate.unit(cgroup: Data(text.utf8)) == unit)
    }
}
