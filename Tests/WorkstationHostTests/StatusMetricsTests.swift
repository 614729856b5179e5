import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite(.serialized) struct StatusTests {
    /// alice: two processes in one terminal session, one in another, and the t3 daemon (no terminal).
    /// bob-dev: one process. A root process and a kernel thread belong to nobody in the roster.
    func populated() throws -> CapacitySandbox {
        let s = try CapacitySandbox()
        #expect(try s.apply().succeeded)
        try s.makeHealthy()
        let alice = s.uid("alice")
        let bob = s.uid("bob-dev")
        try s.process(100, uid: alice, name: "bash", rssKiB: 4_000, session: 100, tty: 34816)
        try s.process(101, uid: alice, name: "claude", rssKiB: 400_000, session: 100, tty: 34816)
        try s.process(102, uid: alice, name: "claude", rssKiB: 600_000, session: 102, tty: 34817)
        try s.process(103, uid: alice, name: "t3", rssKiB: 430_000, session: 103, tty: 0)
        try s.process(200, uid: bob, name: "bash", rssKiB: 3_000, session: 200, tty: 34818)
        try s.process(1, uid: 0, name: "systemd", rssKiB: 12_000, session: 1, tty: 0)
        try s.process(2, uid: 0, name: "kthreadd", rssKiB: nil, session: 0, tty: 0)
        try s.systemdRunning(populated: [("t3-serve@alice.service", alice)])
        // the dispatcher's socket and the firewall as shipped (doctor checks them where systemd runs)
        try s.frontDoor()
        return s
    }

    @Test func rowsMatchTheSyntheticProcesses() throws {
        let s = try populated()
        let rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.map(\.osUser) == ["carol", "alice", "bob-dev"])
        let alice = try #require(rows.first { $0.osUser == "alice" })
        #expect(alice.tier == .powerUser)
        #expect(alice.account == .active)
        #expect(alice.residentBytes == (4_000 + 400_000 + 600_000 + 430_000) * 1024)
        #expect(alice.processes == 4)
        #expect(alice.sessions == 2)
        #expect(alice.budgetBytes == 4 << 30)
        #expect(alice.budgetShare == Double((4_000 + 400_000 + 600_000 + 430_000) * 1024) / Double(4 << 30))
        #expect(alice.unit == "active")
        #expect(alice.port == 3775)  // carol, first in the roster, holds 3774
        #expect(alice.clone == .present)
        let bob = try #require(rows.first { $0.osUser == "bob-dev" })
        #expect(bob.residentBytes == 3_000 * 1024 && bob.sessions == 1)
        #expect(bob.unit == "inactive")
        #expect(bob.budgetBytes == 3 << 30)
        // carol is an admin without an account on this host: no budget, no figures.
        let carol = try #require(rows.first { $0.osUser == "carol" })
        #expect(carol.account == .missing && carol.budgetBytes == nil && carol.residentBytes == 0)
    }

    @Test func accountStatesComeFromShadow() throws {
        let s = try populated()
        // alice: password hash locked with `!`; bob-dev: expired on day 1.
        var shadow = String(decoding: s.root.read("/etc/shadow")!, as: UTF8.self)
        shadow =
            shadow.split(separator: "\n").map { line -> String in
                var f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if f[0] == "alice" { f[1] = "!$6$salt$hash" }
                if f[0] == "bob-dev" { f[7] = "1" }
                return f.joined(separator: ":")
            }.joined(separator: "\n") + "\n"
        try s.write("/etc/shadow", shadow, mode: 0o640)
        var rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.first { $0.osUser == "alice" }?.account == .locked)
        #expect(rows.first { $0.osUser == "bob-dev" }?.account == .expired)
        try s.write(
            "/etc/shadow",
            shadow.split(separator: "\n").filter { !$0.hasPrefix("alice:") }.joined(separator: "\n") + "\n",
            mode: 0o640
        )
        rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.first { $0.osUser == "alice" }?.account == .noShadow)
    }

    @Test func tableAndJSONCarryTheSameFigures() throws {
        let s = try populated()
        let rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        let table = StatusReader.table(rows)
        let aliceLine = try #require(table.split(separator: "\n").first { $0.hasPrefix("alice ") })
        let cells = aliceLine.split(separator: " ").map(String.init)
        #expect(
            cells == ["alice", "power-user", "active", "active", "3775", "2", "1.4G", "4G", "34%", "4/8192", "present"]
        )
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(StatusReader.json(rows).utf8)) as? [String: Any]
        )
        let users = try #require(json["users"] as? [[String: Any]])
        let a = try #require(users.first { $0["os_user"] as? String == "alice" })
        #expect((a["resident_bytes"] as? NSNumber)?.uint64Value == (4_000 + 400_000 + 600_000 + 430_000) * 1024)
        #expect(a["sessions"] as? Int == 2)
    }
}

@Suite(.serialized) struct MetricsTests {
    func sample(_ text: String, _ name: String, _ labels: String = "") -> String? {
        let prefix = labels.isEmpty ? "\(name) " : "\(name){\(labels)} "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// Validates the exposition with the real `promtool check metrics`, which reads it on stdin.
    func promtool(_ text: String) throws -> (Int32, String) {
        let r = try TestProcess.run("/usr/bin/env", ["promtool", "check", "metrics"], input: .bytes(Data(text.utf8)))
        return (r.status, r.stdout + r.stderr)
    }

    @Test func figuresMatchTheSyntheticHostAndPassPromtool() throws {
        let s = try StatusTests().populated()
        try s.write(
            "/proc/pressure/memory",
            "some avg10=1.50 avg60=0.50 avg300=0.10 total=2500000\nfull avg10=0.20 avg60=0.00 avg300=0.00 total=500000\n"
        )
        try s.write(
            "/proc/pressure/io",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=7000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        )
        let text = try MetricsCollector(root: s.root, inputs: try s.inputs(), hostMetrics: true).render()
        #expect(sample(text, "workstation_memory_total_bytes") == String(UInt64(32) << 30))
        #expect(sample(text, "workstation_swap_total_bytes") == String(UInt64(8) << 30))
        #expect(
            sample(text, "workstation_user_resident_memory_bytes", "user=\"alice\",tier=\"power-user\"")
                == String((4_000 + 400_000 + 600_000 + 430_000) * 1024)
        )
        #expect(sample(text, "workstation_user_sessions", "user=\"alice\",tier=\"power-user\"") == "2")
        #expect(
            sample(text, "workstation_user_resident_memory_bytes", "user=\"bob-dev\",tier=\"namespace-owner\"")
                == String(3_000 * 1024)
        )
        #expect(
            sample(text, "workstation_user_memory_max_bytes", "user=\"alice\",tier=\"power-user\"")
                == String(UInt64(4) << 30)
        )
        #expect(sample(text, "workstation_user_memory_max_bytes", "user=\"carol\",tier=\"admin\"") == nil)
        #expect(sample(text, "workstation_user_tasks_max", "user=\"alice\",tier=\"power-user\"") == "8192")
        #expect(sample(text, "workstation_user_tasks_max", "user=\"carol\",tier=\"admin\"") == nil)
        #expect(sample(text, "workstation_user_tasks", "user=\"alice\",tier=\"power-user\"") == "4")
        #expect(
            sample(text, "workstation_pressure_stalled_seconds_total", "resource=\"memory\",kind=\"some\"") == "2.5"
        )
        #expect(
            sample(text, "workstation_pressure_stall_ratio", "resource=\"memory\",kind=\"some\",window=\"10s\"")
                == "0.015"
        )
        #expect(sample(text, "workstation_pressure_stalled_seconds_total", "resource=\"io\",kind=\"some\"") == "7.0")
        #expect(sample(text, "workstation_capacity_committed_bytes") == String(UInt64(7) << 30))
        #expect(sample(text, "workstation_capacity_limit_bytes") == String(UInt64(28) << 30))
        #expect(sample(text, "workstation_pending_changes") == "0")
        // bob-dev's unit is enabled but its cgroup is not populated: doctor's one failure.
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        #expect(
            report.findings.filter { $0.severity == .fail }.map { "\($0.check) \($0.user ?? "")" } == [
                "unit-active bob-dev"
            ]
        )
        #expect(sample(text, "workstation_doctor_failures") == "1")
        let last = try #require(
            sample(text, "workstation_last_successful_reconcile_timestamp_seconds").flatMap(Double.init)
        )
        #expect(last > 1_600_000_000)
        let (status, out) = try promtool(text)
        #expect(status == 0, "promtool: \(out)\n\(text)")
    }

    @Test func absentPressureAndMemoryAreLeftOutGracefully() throws {
        let s = try StatusTests().populated()
        try s.remove("/proc/meminfo")
        // Two more doctor failures after bob-dev's stopped unit: alice's unit disabled, and the drift that leaves.
        try s.remove("/etc/systemd/system/multi-user.target.wants/t3-serve@alice.service")
        let text = try MetricsCollector(root: s.root, inputs: try s.inputs(), hostMetrics: true).render()
        #expect(sample(text, "workstation_pressure_supported", "resource=\"memory\"") == "0")
        #expect(!text.contains("workstation_pressure_stall_ratio"))
        #expect(!text.contains("workstation_memory_total_bytes"))
        #expect(!text.contains("workstation_capacity_limit_bytes"))
        #expect(sample(text, "workstation_doctor_failures") == "3")
        let (status, out) = try promtool(text)
        #expect(status == 0, "promtool: \(out)\n\(text)")
    }

    @Test func labelValuesAreEscaped() {
        var w = ExpositionWriter()
        w.family("workstation_test", "gauge", "A test.", [.init([("user", "a\"b\\c\nd")], 1)])
        #expect(w.text.contains("workstation_test{user=\"a\\\"b\\\\c\\nd\"} 1\n"))
    }
}

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
