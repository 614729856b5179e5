import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

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
