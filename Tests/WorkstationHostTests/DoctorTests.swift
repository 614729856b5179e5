import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// One way to break a healthy host, and the finding doctor must report for it.
enum Breakage: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case noSwap, smallSwap, overcommitted, headcount, accountMissing, budgetMissing, budgetEdited, baseUnreachable
    case secretMode, secretOwner, secretSymlink, forbiddenGroup, unitDisabled, unitNotRunning, derivedEdited, drift
    case cloneMissing, setupHostDrift, timerDisabled, notEnforced, controllerMissing

    var testDescription: String { rawValue }

    /// (check, user) of the failure doctor must report.
    var expected: (String, String?) {
        switch self {
        case .noSwap, .smallSwap: ("swap", nil)
        case .overcommitted: ("memory-headroom", nil)
        case .headcount: ("headcount", nil)
        case .accountMissing: ("account", "dave")
        case .budgetMissing, .budgetEdited: ("budget", "alice")
        case .baseUnreachable: ("config-base", "alice")
        case .secretMode, .secretOwner, .secretSymlink: ("secret-file", "alice")
        case .forbiddenGroup: ("forbidden-group", "alice")
        case .unitDisabled: ("unit-enabled", "alice")
        case .unitNotRunning: ("unit-active", "alice")
        case .derivedEdited: ("derived-file", nil)
        case .drift: ("drift", nil)
        case .cloneMissing: ("clone", "alice")
        case .setupHostDrift: ("setup-host", nil)
        case .timerDisabled: ("reconcile-timer", nil)
        case .notEnforced, .controllerMissing: ("enforcement", "alice")
        }
    }

    func apply(to s: CapacitySandbox) throws {
        let alice = s.uid("alice")
        switch self {
        case .noSwap: try s.meminfo(total: 32 << 30, swap: 0)
        case .smallSwap: try s.meminfo(total: 32 << 30, swap: 1 << 30)
        case .overcommitted: try s.meminfo(total: 8 << 30, swap: 8 << 30)  // 16G - 12G reserve = 4G < 7G of budgets
        case .headcount: try s.write("/etc/workstation/workstation.yaml", "capacity: {max_active_users: 1}\n")
        case .accountMissing:
            try s.write(
                "/etc/workstation/roster.yaml",
                CapacitySandbox.roster + "  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n"
            )
        case .budgetMissing: try s.remove("/etc/systemd/system/user-\(alice).slice.d/50-workstation.conf")
        case .budgetEdited:
            try s.write(
                "/etc/systemd/system/user-\(alice).slice.d/50-workstation.conf",
                "[Slice]\nMemoryMax=infinity\n"
            )
        case .baseUnreachable: chmod(s.path("/srv"), 0o700)
        case .secretMode: try s.write("/home/alice/.vault-token", "s.token\n", mode: 0o644, uid: alice)
        case .secretOwner: try s.write("/home/alice/.claude.json", "{}\n", mode: 0o600, uid: 0)
        case .secretSymlink: symlink("/etc/shadow", s.path("/home/alice/.claude/.credentials.json"))
        case .forbiddenGroup:
            let r = try TestProcess.accountTool("usermod", prefix: s.dir, ["-aG", "sudo", "alice"])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        case .unitDisabled: try s.remove("/etc/systemd/system/multi-user.target.wants/t3-serve@alice.service")
        case .unitNotRunning: try s.systemdRunning(populated: [("t3-serve@bob-dev.service", s.uid("bob-dev"))])
        case .derivedEdited:
            try s.write(
                "/etc/ttyd-user-map",
                (s.root.read("/etc/ttyd-user-map").map { String(decoding: $0, as: UTF8.self) } ?? "")
                    + "mallory=alice\n"
            )
        case .drift: try s.remove("/home/alice/.claude/skills")
        case .cloneMissing:
            // Only a host with an infra repository configured owes anyone a clone.
            try s.write(
                "/etc/workstation/workstation.yaml",
                "config_base: /srv/workstation/config-base\ninfra_repo: {url: 'https://git.example.org/infra.git'}\n"
            )
            try s.remove("/home/alice/code")
        case .setupHostDrift: try s.remove("/etc/systemd/system/\(ReconcileUnits.timerName)")
        case .timerDisabled: try s.remove("/etc/systemd/system/timers.target.wants/\(ReconcileUnits.timerName)")
        case .notEnforced:
            try s.systemdRunning(populated: [
                ("t3-serve@alice.service", alice), ("t3-serve@bob-dev.service", s.uid("bob-dev")),
            ])
            try s.enforce(uid: alice, ["memory.max": "max"])  // a drop-in systemd never loaded
        case .controllerMissing:
            try s.systemdRunning(populated: [
                ("t3-serve@alice.service", alice), ("t3-serve@bob-dev.service", s.uid("bob-dev")),
            ])
            try s.enforce(uid: alice, ["pids.max": "max"])
        }
    }
}

@Suite(.serialized) struct DoctorTests {
    func healthySandbox() throws -> CapacitySandbox {
        let s = try CapacitySandbox()
        let outcome = try s.apply()
        #expect(outcome.succeeded, "\(outcome.report.failed.map(\.error))")
        try s.makeHealthy()
        return s
    }

    @Test func convergedHostPassesEveryCheck() throws {
        let s = try healthySandbox()
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        let failed = report.findings.filter { $0.severity == .fail }
        #expect(failed.isEmpty, "\(failed)")
        #expect(report.warnings == 0, "\(report.findings.filter { $0.severity == .warn })")
        let checks = Set(report.findings.map(\.check))
        for c in [
            "swap", "memory-headroom", "headcount", "budget", "config-base", "secret-file", "forbidden-group",
            "unit-enabled",
            "derived-file", "drift", "clone", "kubeconfig",
        ] {
            #expect(checks.contains(c), "no \(c) check ran")
        }
    }

    @Test(arguments: Breakage.allCases)
    func findsEachFailureKindAndNamesAFix(_ breakage: Breakage) throws {
        let s = try healthySandbox()
        try breakage.apply(to: s)
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        let (check, user) = breakage.expected
        let hit = report.findings.first { $0.check == check && $0.user == user && $0.severity == .fail }
        #expect(
            hit != nil,
            "\(breakage): no failing \(check) for \(user ?? "host") in \(report.findings.filter { $0.severity != .ok })"
        )
        #expect(hit?.fix?.isEmpty == false)
        #expect(!report.healthy)
    }

    @Test func swapBelowMinimumNamesTheSize() throws {
        let s = try healthySandbox()
        try s.meminfo(total: 32 << 30, swap: 1 << 30)
        let f = try #require(
            try Doctor(root: s.root, inputs: try s.inputs()).run().findings.first { $0.check == "swap" }
        )
        #expect(f.message == "swap is 1G, below capacity.min_swap 4G")
        #expect(f.fix?.contains("mkswap") == true)
    }

    @Test func configBaseReachableThroughAGroupACL() throws {
        let s = try healthySandbox()
        chmod(s.path("/srv"), 0o750)  // root:root, no access for others
        var f = try Doctor(root: s.root, inputs: try s.inputs()).run().findings.first {
            $0.check == "config-base" && $0.user == "alice"
        }
        #expect(f?.severity == .fail)
        #expect(f?.message.contains("/srv lacks search (x)") == true)
        #expect(f?.fix == "setfacl -m g:workstation:x /srv")
        // setfacl resolves names through the real host's groups, so the sandbox's group goes by number.
        let gid = try #require(
            AccountDatabase.group(s.root.read("/etc/group")!).first { $0.name == "workstation" }?.gid
        )
        let acl = try TestProcess.run("/usr/bin/setfacl", ["-m", "g:\(gid):x", s.path("/srv")])
        try #require(acl.status == 0, "\(acl.stdout)\(acl.stderr)")
        f = try Doctor(root: s.root, inputs: try s.inputs()).run().findings.first {
            $0.check == "config-base" && $0.user == "alice"
        }
        #expect(f?.severity == .ok, "\(String(describing: f))")
    }

    @Test func runningUnitsPassWhereSystemdRuns() throws {
        let s = try healthySandbox()
        try s.systemdRunning(populated: [
            ("t3-serve@alice.service", s.uid("alice")), ("t3-serve@bob-dev.service", s.uid("bob-dev")),
        ])
        try s.frontDoor()  // where systemd runs, the front door is checked too (FrontDoorDoctorTests)
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        #expect(report.findings.filter { $0.check == "unit-active" }.map(\.severity) == [.ok, .ok])
        #expect(report.healthy)
    }

    @Test func keptCodeSymlinkIsAWarningNotAFailure() throws {
        let s = try healthySandbox()
        try s.write(
            "/etc/workstation/workstation.yaml",
            "config_base: /srv/workstation/config-base\ninfra_repo: {url: 'https://git.example.org/infra.git', launcher_path: ''}\n"
        )
        try s.remove("/home/alice/code")
        symlink("/home/carol/code", s.path("/home/alice/code"))
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        let f = try #require(report.findings.first { $0.check == "clone" && $0.user == "alice" })
        #expect(f.severity == .warn)
        #expect(f.message.contains("a symlink to /home/carol/code"))
        #expect(report.healthy)
    }

    @Test func memoryPressureNowIsAWarning() throws {
        let s = try healthySandbox()
        try s.write(
            "/proc/pressure/memory",
            "some avg10=30.00 avg60=20.00 avg300=5.00 total=90000000\nfull avg10=15.00 avg60=12.00 avg300=3.00 total=40000000\n"
        )
        var report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        var f = try #require(report.findings.first { $0.check == "memory-now" })
        #expect(f.severity == .warn && f.message == "tasks stalled on memory 12% of the last minute (PSI full avg60)")
        #expect(report.healthy)
        try s.remove("/proc/pressure/memory")
        try s.meminfo(total: 32 << 30, swap: 8 << 30, available: 1 << 30)  // 1G + 8G free swap = 9G > 40G / 20
        report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        #expect(report.findings.first { $0.check == "memory-now" }?.severity == .ok)
        try s.write(
            "/proc/meminfo",
            "MemTotal: \(32 << 20) kB\nMemAvailable: \(1 << 20) kB\nSwapTotal: \(8 << 20) kB\nSwapFree: 0 kB\n"
        )
        f = try #require(
            try Doctor(root: s.root, inputs: try s.inputs()).run().findings.first { $0.check == "memory-now" }
        )
        #expect(f.severity == .warn && f.message == "only 1G of memory and swap are available")
    }

    @Test func unknownCapacityWarnsButDoesNotFail() throws {
        let s = try healthySandbox()
        try s.remove("/proc/meminfo")
        let report = try Doctor(root: s.root, inputs: try s.inputs()).run()
        #expect(report.findings.first { $0.check == "swap" }?.severity == .warn)
        #expect(report.findings.first { $0.check == "memory-headroom" } == nil)
    }
}
