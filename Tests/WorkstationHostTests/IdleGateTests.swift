import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

@Suite struct IdleGateTests {
    @Test func readsProcessesByRealUidAndEstablishedConnectionsToThePort() throws {
        let temp = try TempRoot("lc")
        let dir = temp.path
        try temp.write("/proc/10/status", "Name:\tclaude\nUid:\t1000\t1000\t1000\t1000\n")
        try temp.write("/proc/10/comm", "claude\n")
        try temp.write("/proc/11/status", "Name:\tsleep\nUid:\t1000\t0\t0\t0\n")
        try temp.write("/proc/11/comm", "sleep\n")
        try temp.write("/proc/12/status", "Name:\ttmux\nUid:\t1001\t1001\t1001\t1001\n")
        try temp.write("/proc/12/comm", "tmux: server\n")
        try temp.write("/proc/self/status", "Uid:\t1000\t1000\t1000\t1000\n")
        let head = "  sl  local_address rem_address   st tx_queue rx_queue\n"
        try temp.write(
            "/proc/net/tcp",
            head
                + "   0: 0100007F:0EBE 0100007F:C350 01 00000000:00000000\n"  // 3774, established
                + "   1: 00000000:0EBE 00000000:0000 0A 00000000:00000000\n"  // 3774, listen
                + "   2: 0100007F:0EBF 0100007F:C351 01 00000000:00000000\n"
        )  // 3775
        try temp.write(
            "/proc/net/tcp6",
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
