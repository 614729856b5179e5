import Foundation
import Testing
import WorkstationTestSupport

/// The capacity gate, doctor, status and metrics through the built binary against temp roots.
@Suite(.serialized) struct CapacityEndToEndTests {
    static let twoPeople = """
        users:
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """
    static let withDave = twoPeople + "  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n"

    /// Reserve 1G; budgets alice 4G + bob-dev 3G + dave 4G = 11G once dave is in.
    static let settings = "config_base: /srv/workstation/config-base\ncapacity: {reserve: 1G}\n"

    func meminfo(_ root: TempRoot, totalKiB: UInt64, swapKiB: UInt64) throws {
        try root.write(
            "/proc/meminfo",
            "MemTotal: \(totalKiB) kB\nMemAvailable: \(totalKiB / 2) kB\nSwapTotal: \(swapKiB) kB\nSwapFree: \(swapKiB) kB\n"
        )
    }

    func args(_ cmd: String, _ root: TempRoot, _ extra: [String] = []) -> [String] {
        [
            cmd, "--roster", root.file("/etc/workstation/roster.yaml"), "--settings",
            root.file("/etc/workstation/workstation.yaml"),
            "--root", root.path,
        ] + extra
    }

    /// Two people onboarded on a host with 8G of memory and 3G of swap: 11G - 1G reserve = 10G of room.
    func onboardedRoot() throws -> TempRoot {
        let root = try TempRoot()
        try root.write("/etc/workstation/roster.yaml", Self.twoPeople)
        try root.write("/etc/workstation/workstation.yaml", Self.settings)
        try meminfo(root, totalKiB: 8 << 20, swapKiB: 3 << 20)
        let r = try CLI.run(args("apply", root, ["--init-root"]))
        #expect(r.status == 0, "\(r.stderr)")
        return root
    }

    @Test func onboardingOverCapacityIsRefusedWithTheArithmeticAndChangesNothing() throws {
        let root = try onboardedRoot()
        try root.write("/etc/workstation/roster.yaml", Self.withDave)
        // Limit 10G - 1 byte... expressed in KiB: one KiB short of the 11G dave needs.
        try meminfo(root, totalKiB: (9 << 20) - 1, swapKiB: 3 << 20)
        let before = root.snapshot()
        let r = try CLI.run(args("apply", root))
        #expect(r.status == 3, "\(r.stdout)\(r.stderr)")
        #expect(
            r.stderr.contains(
                "refused by capacity: onboarding dave would commit 11G of memory budgets, 1024 bytes over the limit"
            )
        )
        #expect(r.stderr.contains("alice 4G + bob-dev 3G + dave 4G (new) = 11G (11811160064 bytes)"))
        #expect(r.stderr.contains("--allow-overcommit"))
        #expect(r.stderr.contains("nothing was changed"))
        #expect(root.snapshot() == before)
        // plan shows the same refusal and exits 3.
        let plan = try CLI.run(args("plan", root))
        #expect(plan.status == 3)
        #expect(
            plan.stderr.contains("refused by capacity") && !plan.stdout.contains("refused by"),
            "refusals go to standard error only"
        )
    }

    @Test func badCapacitySettingsAreLocatedAndChangeNothing() throws {
        let root = try onboardedRoot()
        try root.write("/etc/workstation/roster.yaml", Self.withDave)
        try root.write(
            "/etc/workstation/workstation.yaml",
            "capacity:\n  reserve: 12 GB\n  budgets:\n    power-user: {high: 5G, max: 4G, swap_max: 1G}\n"
        )
        let before = root.snapshot()
        let r = try CLI.run(args("apply", root))
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("workstation.yaml:2:12: error: capacity.reserve '12 GB' is not a size like 512M or 4G")
        )
        #expect(
            r.stderr.contains(
                "workstation.yaml:4:17: error: capacity.budgets.power-user: high (5368709120 bytes) must not exceed max (4294967296 bytes)"
            )
        )
        #expect(r.stderr.contains("nothing was changed"))
        #expect(root.snapshot() == before)
    }

    @Test func exactlyAtTheLimitIsAdmitted() throws {
        let root = try onboardedRoot()
        try root.write("/etc/workstation/roster.yaml", Self.withDave)
        try meminfo(root, totalKiB: 9 << 20, swapKiB: 3 << 20)  // 12G - 1G = 11G = the budgets
        let r = try CLI.run(args("apply", root))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(root.read("/etc/passwd")?.contains("\ndave:") == true)
    }

    @Test func allowOvercommitOnboardsAndIsJournaled() throws {
        let root = try onboardedRoot()
        try root.write("/etc/workstation/roster.yaml", Self.withDave)
        try meminfo(root, totalKiB: 4 << 20, swapKiB: 0)
        let r = try CLI.run(args("apply", root, ["--allow-overcommit"]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("capacity gate overridden (--allow-overcommit, journaled)"))
        let journal = try #require(root.read("/var/lib/workstation/journal.jsonl"))
        let line = try #require(journal.split(separator: "\n").first { $0.contains("\"capacity:overcommit\"") })
        #expect(line.contains("\"result\":\"overridden\""))
        #expect(line.contains("onboarding dave"))
    }

    @Test func existingPeopleAreNeverRefused() throws {
        let root = try onboardedRoot()
        // The host shrank below the budgets, and alice's budget grew: nobody is new, so apply still runs.
        try meminfo(root, totalKiB: 1 << 20, swapKiB: 0)
        try root.write(
            "/etc/workstation/roster.yaml",
            Self.twoPeople.replacingOccurrences(
                of: "tier: power-user }",
                with: "tier: power-user, memory: {high: 6G, max: 8G, swap_max: 1G} }"
            )
        )
        let r = try CLI.run(args("apply", root))
        #expect(r.status == 0, "\(r.stderr)")
        let uid = try #require(
            root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("alice:") }?.split(separator: ":")[2]
        )
        #expect(
            root.read("/etc/systemd/system/user-\(uid).slice.d/50-workstation.conf")?.contains("MemoryMax=8G\n") == true
        )
    }

    @Test func unknownCapacityIsSaidNotRefused() throws {
        let root = try TempRoot()
        try root.write("/etc/workstation/roster.yaml", Self.twoPeople)
        try root.write("/etc/workstation/workstation.yaml", Self.settings)
        let r = try CLI.run(args("apply", root, ["--init-root"]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("note: capacity unknown"))
    }

    @Test func doctorStatusAndMetricsThroughTheBinary() throws {
        let root = try onboardedRoot()
        // Swap 3G < 4G: doctor fails and says how to fix; clones and kubeconfigs are not configured, so not owed.
        let doctor = try CLI.run(args("doctor", root))
        #expect(doctor.status == 1)
        #expect(doctor.stdout.contains("FAIL swap: swap is 3G, below capacity.min_swap 4G"))
        #expect(!doctor.stdout.contains("FAIL kubeconfig") && !doctor.stdout.contains("FAIL clone"))
        #expect(doctor.stdout.contains("fix: "))
        let dj = try CLI.run(args("doctor", root, ["--json"]))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(dj.stdout.utf8)) as? [String: Any])
        // setup-host never ran on this root: its layers and the reconcile timer are owed too.
        let failing = ((obj["findings"] as? [[String: Any]]) ?? []).filter { $0["severity"] as? String == "fail" }
            .compactMap { $0["check"] as? String }
        #expect(Set(failing) == ["swap", "setup-host", "reconcile-timer"], "\(failing)")
        #expect((obj["failures"] as? Int ?? 0) == failing.count)
        #expect(doctor.stdout.contains("FAIL reconcile-timer: workstation-reconcile.timer is not enabled"))
        #expect(
            doctor.stdout.contains("fix: workstation setup-host --roster"),
            "the fix acts on the same root: \(doctor.stdout)"
        )

        let uid = try #require(
            root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("alice:") }?.split(separator: ":")[2]
        )
        try root.write(
            "/proc/4000/status",
            "Name:\tclaude\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\nVmRSS:\t  524288 kB\n"
        )
        try root.write("/proc/4000/stat", "4000 (claude) S 1 4000 4000 34816 4000 0\n")
        let status = try CLI.run(args("status", root, ["--json"]))
        #expect(status.status == 0, "\(status.stderr)")
        let s = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let alice = try #require((s["users"] as? [[String: Any]])?.first { $0["os_user"] as? String == "alice" })
        #expect((alice["resident_bytes"] as? NSNumber)?.uint64Value == 512 << 20)
        #expect(alice["budget_share"] as? Double == 0.125)
        #expect(alice["sessions"] as? Int == 1)
        let table = try CLI.run(args("status", root))
        #expect(table.stdout.hasPrefix("USER "))
        #expect(table.stdout.contains("512M"))

        let out = root.file("/var/lib/node-exporter/workstation.prom")
        let metrics = try CLI.run(args("metrics", root, ["--output", out]))
        #expect(metrics.status == 0, "\(metrics.stderr)")
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(
            text.contains("workstation_user_resident_memory_bytes{user=\"alice\",tier=\"power-user\"} \(512 << 20)\n")
        )
        #expect(text.contains("workstation_doctor_failures \((obj["failures"] as? Int) ?? -1)\n"))
        let check = try TestProcess.run("/usr/bin/promtool", ["check", "metrics"], input: .file(out))
        #expect(check.status == 0)
    }
}
