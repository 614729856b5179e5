import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct ProcReaderTests {
    @Test func unitStateFromUnifiedAndHybridCgroupTrees() throws {
        let temp = try TempRoot("cg")
        let dir = temp.path
        let reader = ProcReader(root: HostRoot(dir))
        func write(_ rel: String, _ text: String) throws { try temp.write(rel, text) }
        #expect(reader.unitActive("t3-serve@alice.service", uid: 1001) == nil)  // no cgroup v2 tree: unknown
        // Hybrid layout: the v2 tree lives under /sys/fs/cgroup/unified.
        try write("/sys/fs/cgroup/unified/cgroup.controllers", "")
        #expect(reader.unitActive("t3-serve@alice.service", uid: 1001) == false)
        try write(
            "/sys/fs/cgroup/unified/user.slice/user-1001.slice/t3-serve@alice.service/cgroup.events",
            "populated 0\nfrozen 0\n"
        )
        #expect(reader.unitActive("t3-serve@alice.service", uid: 1001) == false)
        try write(
            "/sys/fs/cgroup/unified/user.slice/user-1001.slice/t3-serve@alice.service/cgroup.events",
            "populated 1\nfrozen 0\n"
        )
        #expect(reader.unitActive("t3-serve@alice.service", uid: 1001) == true)
        // Started before its Slice= drop-in existed: still in system.slice.
        try write("/sys/fs/cgroup/system.slice/t3-serve@bob.service/cgroup.events", "populated 1\n")
        try write("/sys/fs/cgroup/cgroup.controllers", "memory\n")
        #expect(reader.unitActive("t3-serve@bob.service", uid: 1002) == true)
    }

    @Test func readsTheRealProcFilesWhichReportSizeZero() throws {
        // /proc files stat as 0 bytes; the reader must read to EOF.
        let m = try #require(ProcReader(root: .system).memory())
        #expect(m.total > 0)
        let me = try #require(ProcReader(root: .system).processes().first { $0.pid == Int(getpid()) })
        #expect(me.uid == Int(getuid()) && me.residentBytes > 0)
    }
}
