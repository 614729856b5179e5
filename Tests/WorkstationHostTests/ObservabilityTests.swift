import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// People mid-offboarding in `status` and `metrics`, the unit and build gauges, what is left to node_exporter, and the
/// shipped Prometheus alert rules (checked and unit-tested with the real promtool).
@Suite(.serialized) struct ObservabilityTests {
    static let withoutAlice = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """

    /// The populated sandbox after alice left the roster and apply ran; `stages` is then written into state as the
    /// offboarding record (nil: no stage run yet; `archived`: the account is dropped from state, as archive does).
    func departed(_ record: OffboardingRecord?, archived: Bool = false) throws -> CapacitySandbox {
        let s = try StatusTests().populated()
        try s.write("/etc/workstation/roster.yaml", Self.withoutAlice)
        #expect(try s.apply().plan.changes.contains { $0.id == "offboard:alice" })
        let inputs = try s.inputs()
        var state = try Observer(root: s.root, settings: inputs.settings).observeBase().state
        state.offboarding["alice"] = record
        if archived { state.accounts["alice"] = nil }
        try StateStore(root: s.root, settings: inputs.settings).save(state)
        return s
    }

    static func record(cut: Bool? = nil, revoke: Bool = false, uid: Int) -> OffboardingRecord {
        var r = OffboardingRecord(uid: uid, home: "/home/alice")
        let before = AccountBeforeState(
            groups: [],
            shell: "/bin/bash",
            passwordLocked: false,
            expireDays: nil,
            units: [:],
            idpMembership: "not configured"
        )
        if let cut { r.cut = .init(time: 1_767_225_600, before: before, completed: cut) }  // 2026-01-01 00:00 UTC
        // 2026-01-02
        if revoke { r.revoke = .init(time: 1_767_312_000, deletedFiles: [], absentFiles: [], adminSteps: []) }
        return r
    }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var cut: Bool?
        var revoke = false
        var archived = false
        /// Expected: nil when alice is not mid-offboarding.
        var next: String?
        var stage = ""
        var since = "-"
        var command = ""
        var stamps: [String: String] = [:]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "left the roster, nothing run",
            next: "cut",
            stage: "none",
            command: "workstation offboard alice --stage cut"
        ),
        Case(
            name: "cut stopped half-way",
            cut: false,
            next: "cut",
            stage: "cut (incomplete)",
            since: "2026-01-01",
            command: "workstation offboard alice --stage cut"
        ),
        Case(
            name: "cut",
            cut: true,
            next: "revoke",
            stage: "cut",
            since: "2026-01-01",
            command: "workstation offboard alice --stage revoke",
            stamps: ["cut": "1767225600.0"]
        ),
        Case(
            name: "cut and revoked",
            cut: true,
            revoke: true,
            next: "archive",
            stage: "revoke",
            since: "2026-01-02",
            command: "workstation offboard alice --stage archive --confirm alice",
            stamps: ["cut": "1767225600.0", "revoke": "1767312000.0"]
        ),
        Case(name: "archived", cut: true, revoke: true, archived: true),
    ]

    @Test(arguments: cases) func offboardingInStatusAndMetrics(_ c: Case) throws {
        let s = try departed(
            c.cut == nil && !c.revoke ? nil : Self.record(cut: c.cut, revoke: c.revoke, uid: 0),
            archived: c.archived
        )
        let aliceUid = s.uid("alice")
        let reader = StatusReader(root: s.root, inputs: try s.inputs())
        let rows = try reader.offboarding()
        #expect(try reader.rows().map(\.osUser) == ["carol", "bob-dev"])
        let text = try MetricsCollector(root: s.root, inputs: try s.inputs(), version: "9.8.7").render()
        let m = MetricsTests()
        guard let next = c.next else {
            #expect(rows.isEmpty)
            #expect(OffboardingRow.table(rows).isEmpty)
            #expect(m.sample(text, "workstation_offboarding_pending") == "0")
            #expect(!text.contains("workstation_offboarding_pending_user{"))
            return
        }
        let row = try #require(rows.first)
        #expect(rows.count == 1 && row.osUser == "alice" && row.uid == aliceUid)
        #expect(row.nextStage.rawValue == next && row.stageWords == c.stage)
        // alice's four synthetic processes still run (nothing here ends them).
        #expect(row.processes == 4)

        let table = OffboardingRow.table(rows, options: " --root /r")
        let line = try #require(table.split(separator: "\n").first { $0.hasPrefix("alice ") })
        #expect(line.hasSuffix(c.command + " --root /r"))
        #expect(line.contains("  \(c.since)  "))
        #expect(line.contains("  \(c.stage)  "))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(StatusReader.json([], offboarding: rows).utf8))
                as? [String: Any]
        )
        let j = try #require((json["offboarding"] as? [[String: Any]])?.first)
        #expect(
            j["os_user"] as? String == "alice" && j["next_stage"] as? String == next
                && j["command"] as? String == c.command
        )
        #expect(j["processes"] as? Int == 4 && j["cut_incomplete"] as? Bool == (c.cut == false))

        #expect(m.sample(text, "workstation_offboarding_pending") == "1")
        #expect(m.sample(text, "workstation_offboarding_pending_user", "user=\"alice\",next_stage=\"\(next)\"") == "1")
        for stage in ["cut", "revoke"] {
            #expect(
                m.sample(text, "workstation_offboarding_stage_timestamp_seconds", "user=\"alice\",stage=\"\(stage)\"")
                    == c.stamps[stage],
                "\(stage)"
            )
        }
        #expect(m.sample(text, "workstation_build_info", "version=\"9.8.7\"") == "1")
        let (status, out) = try m.promtool(text)
        #expect(status == 0, "promtool: \(out)\n\(text)")
    }

    @Test func statusTableLeavesTheBlockOutWhenNobodyLeaves() throws {
        let s = try StatusTests().populated()
        let reader = StatusReader(root: s.root, inputs: try s.inputs())
        #expect(try reader.offboarding().isEmpty)
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(StatusReader.json(try reader.rows(), offboarding: []).utf8))
                as? [String: Any]
        )
        #expect((json["offboarding"] as? [Any])?.isEmpty == true)
    }

    /// node_exporter's meminfo and pressure collectors export host memory, swap and PSI: only `--host-metrics`
    /// writes them again.
    @Test func hostFiguresOnlyBehindTheFlag() throws {
        let s = try StatusTests().populated()
        try s.write(
            "/proc/pressure/memory",
            "some avg10=1.50 avg60=0.50 avg300=0.10 total=2500000\nfull avg10=0.20 avg60=0.00 avg300=0.00 total=500000\n"
        )
        let host = [
            "workstation_memory_total_bytes", "workstation_memory_available_bytes", "workstation_swap_total_bytes",
            "workstation_swap_free_bytes", "workstation_pressure_supported",
            "workstation_pressure_stalled_seconds_total",
            "workstation_pressure_stall_ratio",
        ]
        let plain = try MetricsCollector(root: s.root, inputs: try s.inputs()).render()
        let flagged = try MetricsCollector(root: s.root, inputs: try s.inputs(), hostMetrics: true).render()
        for family in host {
            #expect(!plain.contains("# TYPE \(family) "), "\(family) without --host-metrics")
            #expect(flagged.contains("# TYPE \(family) "), "\(family) with --host-metrics")
        }
        // The rest is the same with and without the flag; the capacity gate's own figures stay.
        #expect(Self.families(plain) == Self.families(flagged).subtracting(host))
        #expect(plain.contains("# TYPE workstation_capacity_limit_bytes gauge"))
        #expect(!plain.contains("workstation_build_info"))  // no version given
    }

    /// The front-door units, where systemd runs: a service by its invocation file, the socket by a listening line
    /// in /proc/net/unix (systemd writes no invocation file for sockets; a stopped socket unit leaves its path on
    /// disk); ttyd is left out where it is not deployed.
    @Test func unitGaugesFollowSystemd() throws {
        let s = try StatusTests().populated()
        let m = MetricsTests()
        let header = "Num       RefCount Protocol Flags    Type St Inode Path\n"
        let listening =
            "0000000000000000: 00000002 00000000 00010000 0001 01 21034 /run/workstation-dispatch/dispatch.sock\n"
        let connected =
            "0000000000000000: 00000003 00000000 00000000 0001 03 21090 /run/workstation-dispatch/dispatch.sock\n"
        let cases: [(unix: String?, invocation: Bool, ttyd: Bool, expected: [String: String?])] = [
            (
                nil, false, false,
                [
                    "workstation-firewall.service": "1", "workstation-dispatch.socket": "0",
                    "workstation-dispatch.service": "0",
                    "workstation-ttyd.service": nil,
                ]
            ),
            (header + connected, false, false, ["workstation-dispatch.socket": "0"]),
            (
                header + connected + listening, true, true,
                [
                    "workstation-dispatch.socket": "1", "workstation-dispatch.service": "1",
                    "workstation-ttyd.service": "0",
                ]
            ),
        ]
        for c in cases {
            if let unix = c.unix { try s.write("/proc/net/unix", unix) } else { try? s.remove("/proc/net/unix") }
            if c.invocation {
                symlink(
                    "0123456789abcdef0123456789abcdef",
                    s.path("/run/systemd/units/invocation:workstation-dispatch.service")
                )
            }
            if c.ttyd {
                try FileManager.default.createDirectory(
                    atPath: s.path("/run/workstation-ttyd"),
                    withIntermediateDirectories: true
                )
            }
            let text = try MetricsCollector(root: s.root, inputs: try s.inputs()).render()
            for (unit, value) in c.expected {
                #expect(
                    m.sample(text, "workstation_unit_active", "unit=\"\(unit)\"") == value,
                    "\(unit) with \(c.unix ?? "no /proc/net/unix")"
                )
            }
            #expect(!text.contains("workstation-reconcile.timer"))
        }
        // No running systemd under the root: the family is left out, not reported as all down.
        try s.remove("/run/systemd/system")
        let text = try MetricsCollector(root: s.root, inputs: try s.inputs()).render()
        #expect(!text.contains("workstation_unit_active"))
    }

    static func families(_ text: String) -> Set<String> {
        Set(
            text.split(separator: "\n").compactMap { line in
                line.hasPrefix("# TYPE ") ? line.split(separator: " ")[2].description : nil
            }
        )
    }

    static let rulesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../deploy/prometheus"
    ).standardized.path
    /// promtool comes with Debian's prometheus package; .ci/run installs it. Only a local run without it skips.
    static let promtoolRuns =
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].contains { FileManager.default.isExecutableFile(atPath: $0) }
        || ProcessInfo.processInfo.environment["CI"] == "true"

    @Test(
        .enabled(if: promtoolRuns, "promtool is not installed here (apt-get install prometheus); CI always runs this")
    )
    func alertRulesPassPromtoolCheckAndTheirUnitTests() throws {
        let check = try TestProcess.run(
            "/usr/bin/env",
            ["promtool", "check", "rules", Self.rulesDirectory + "/workstation.rules.yml"]
        )
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect((check.stdout + check.stderr).contains("SUCCESS: 14 rules found"), "\(check.stdout)\(check.stderr)")
        let tests = try TestProcess.run(
            "/usr/bin/env",
            [
                "promtool", "test", "rules", Self.rulesDirectory + "/workstation.rules.test.yml",
                Self.rulesDirectory + "/workstation.rules.month.test.yml",
            ]
        )
        #expect(tests.status == 0, "\(tests.stdout)\(tests.stderr)")
    }

    /// Every workstation_* series an alert reads is one `workstation metrics` writes by default (not only behind
    /// --host-metrics), and every node_* series is node_exporter's; no rule reads a name nobody exports.
    @Test func everyMetricTheRulesReadIsExported() throws {
        let rules = try String(contentsOfFile: Self.rulesDirectory + "/workstation.rules.yml", encoding: .utf8)
        let exprs = rules.split(separator: "\n").filter {
            !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") && !$0.contains("summary:")
                && !$0.contains("description:")
        }
        .joined(separator: "\n")
        let names = Set(exprs.matches(of: /\b(workstation|node)_[a-z_]+/).map { String($0.output.0) })
        let workstation = names.filter { $0.hasPrefix("workstation_") }
        let node = names.subtracting(workstation)
        #expect(workstation.count >= 10, "\(names.sorted())")
        #expect(node == ["node_pressure_memory_stalled_seconds_total", "node_textfile_mtime_seconds"])

        let s = try departed(Self.record(cut: true, uid: 0))
        let text = try MetricsCollector(root: s.root, inputs: try s.inputs(), version: "1.0").render()
        let exported = Self.families(text)
        #expect(
            workstation.subtracting(exported).isEmpty,
            "not exported: \(workstation.subtracting(exported).sorted())"
        )
    }
}
