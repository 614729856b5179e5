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

@Suite struct PosixACLTests {
    @Test func accessFollowsTheACLAlgorithm() {
        let check = AccessCheck(uid: 1001, gids: [1001, 500])
        // Plain modes: other bits decide for a stranger.
        #expect(check.allows(.execute, owner: 0, group: 0, mode: 0o751, acl: nil))
        #expect(!check.allows(.execute, owner: 0, group: 0, mode: 0o750, acl: nil))
        #expect(check.allows(.execute, owner: 0, group: 500, mode: 0o750, acl: nil))
        // Named group entry, limited by the mask.
        let acl = PosixACL(entries: [
            .init(tag: .userObj, perm: 7, id: 0), .init(tag: .groupObj, perm: 5, id: 0),
            .init(tag: .group, perm: 1, id: 500), .init(tag: .mask, perm: 5, id: 0), .init(tag: .other, perm: 0, id: 0),
        ])
        #expect(check.allows(.execute, owner: 0, group: 0, mode: 0o750, acl: acl))
        #expect(!check.allows(.read, owner: 0, group: 0, mode: 0o750, acl: acl))
        var masked = acl
        masked.entries[3].perm = 4
        #expect(!check.allows(.execute, owner: 0, group: 0, mode: 0o740, acl: masked))
    }

    @Test func parsesTheXattrLayout() throws {
        // version 2; USER_OBJ rwx; GROUP 500 --x; OTHER ---
        let bytes: [UInt8] = [
            2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 8, 0, 1, 0, 0xf4, 1, 0, 0, 0x20, 0, 0, 0, 0xff, 0xff, 0xff,
            0xff,
        ]
        let acl = try #require(PosixACL.parse(bytes))
        #expect(acl.entries.count == 3)
        #expect(acl.entries[1] == PosixACL.Entry(tag: .group, perm: 1, id: 500))
        #expect(PosixACL.parse([1, 0, 0, 0]) == nil)
    }
}

/// The machine-wide checks that do not fit a healthy sandbox's breakage table: the cgroup layout, kubelogin and the
/// integrations' token files (read from settings only; doctor's own run would talk to the services).
@Suite(.serialized) struct DoctorHostTests {
    func sandbox(settings: String = "config_base: /srv/workstation/config-base\n") throws -> CapacitySandbox {
        let s = try CapacitySandbox(settings: settings)
        #expect(try s.apply().succeeded)
        return s
    }

    @Test(arguments: [
        // (files under /sys/fs/cgroup, expected severity, words in the message)
        ([String: String](), Finding.Severity?.none, ""),
        (
            ["memory/tasks": "", "pids/tasks": ""], .warn,
            "cgroup v1 (hybrid): MemoryHigh and MemorySwapMax are not enforced"
        ),
        (["memory/tasks": ""], .warn, "TasksMax not at all"),
        (["cgroup.controllers": "cpu io pids\n"], .fail, "memory controller is not available"),
        (["cgroup.controllers": "cpu io memory\n"], .fail, "pids controller is not available"),
        (["cgroup.controllers": "memory pids\n"], .ok, "is not running"),
    ])
    func cgroupLayouts(_ files: [String: String], _ severity: Finding.Severity?, _ words: String) throws {
        let s = try sandbox()
        for (file, text) in files { try s.write("/sys/fs/cgroup/\(file)", text) }
        let inputs = try s.inputs()
        let doctor = Doctor(root: s.root, inputs: inputs)
        let (_, desired, snap) = try Engine.plan(inputs, root: s.root)
        let found = doctor.enforcementChecks(
            desired,
            snap,
            planner: Planner(settings: inputs.settings),
            systemdRuns: false
        )
        if let severity {
            #expect(found.contains { $0.severity == severity && $0.message.contains(words) }, "\(found)")
        } else {
            #expect(found.isEmpty, "a sandbox without a cgroup tree says nothing: \(found)")
        }
    }

    @Test func enforcementComparesEveryLimit() throws {
        let s = try sandbox()
        let alice = s.uid("alice")
        try s.systemdRunning(populated: [("t3-serve@alice.service", alice)])
        let inputs = try s.inputs()
        func aliceFinding() throws -> Finding? {
            let (_, desired, snap) = try Engine.plan(inputs, root: s.root)
            return Doctor(root: s.root, inputs: inputs).enforcementChecks(
                desired,
                snap,
                planner: Planner(settings: inputs.settings),
                systemdRuns: true
            )
            .first { $0.user == "alice" }
        }
        #expect(try aliceFinding()?.severity == .ok)
        for (file, value) in [
            ("memory.high", "max"), ("memory.max", "1073741824"), ("memory.swap.max", "0"), ("pids.max", "4915"),
        ] {
            let saved = s.root.read("/sys/fs/cgroup/user.slice/user-\(alice).slice/\(file)")
            try s.enforce(uid: alice, [file: value])
            let f = try aliceFinding()
            #expect(
                f?.severity == .fail && f?.message.contains("\(file) is \(value)") == true,
                "\(file): \(String(describing: f))"
            )
            try s.write(
                "/sys/fs/cgroup/user.slice/user-\(alice).slice/\(file)",
                String(decoding: saved ?? Data(), as: UTF8.self)
            )
        }
        #expect(try aliceFinding()?.severity == .ok)
    }

    @Test func kubeloginIsCheckedOnlyWhereKubeconfigsAreMade() throws {
        let plain = try sandbox()
        #expect(Doctor(root: plain.root, inputs: try plain.inputs()).kubeloginChecks().isEmpty)
        let s = try sandbox(
            settings: """
                config_base: /srv/workstation/config-base
                kubernetes: {server: 'https://k8s.example.org:6443', oidc_issuer_url: 'https://auth.example.org/application/o/k8s/', oidc_client_id: k8s}

                """
        )
        let doctor = Doctor(root: s.root, inputs: try s.inputs())
        func kubelogin() -> [Finding.Severity] {
            doctor.kubeloginChecks().filter { $0.check == "kubelogin" }.map(\.severity)
        }
        #expect(kubelogin() == [.fail])
        try s.write("/usr/local/bin/kubectl-oidc_login", "#!/bin/sh\n", mode: 0o755)
        #expect(kubelogin() == [.ok])
        chmod(s.path("/usr/local/bin/kubectl-oidc_login"), 0o644)
        #expect(kubelogin() == [.fail], "a file kubectl cannot run is not a plugin")
    }

    /// kubectl is not in Debian 12's main archive, so it is checked rather than assumed; with a service-account
    /// token kubelogin is not needed, kubectl still is.
    @Test(arguments: [
        (
            "oidc_issuer_url: 'https://auth.example.org/o/k8s/', oidc_client_id: k8s", false,
            ["kubectl": Finding.Severity.fail, "kubelogin": .fail]
        ),
        (
            "oidc_issuer_url: 'https://auth.example.org/o/k8s/', oidc_client_id: k8s", true,
            ["kubectl": .ok, "kubelogin": .fail]
        ),
        ("auth: service-account-token", false, ["kubectl": .fail]),
        ("auth: service-account-token", true, ["kubectl": .ok]),
    ])
    func kubectlIsCheckedAndKubeloginOnlyForOIDC(
        _ extra: String,
        _ kubectl: Bool,
        _ expected: [String: Finding.Severity]
    ) throws {
        let s = try sandbox(
            settings: """
                config_base: /srv/workstation/config-base
                kubernetes: {server: 'https://k8s.example.org:6443', \(extra)}

                """
        )
        if kubectl { try s.write("/usr/bin/kubectl", "#!/bin/sh\n", mode: 0o755) }
        let found = Doctor(root: s.root, inputs: try s.inputs()).kubeloginChecks()
        #expect(Dictionary(uniqueKeysWithValues: found.map { ($0.check, $0.severity) }) == expected)
        if !kubectl { #expect(found.first { $0.check == "kubectl" }?.fix?.contains("pkgs.k8s.io") == true) }
    }

    @Test(arguments: [
        (0o600, 0, Finding.Severity.ok), (0o400, 0, .ok), (0o640, 0, .fail), (0o604, 0, .fail), (0o600, 1000, .fail),
    ])
    func tokenFilesAreRootsAlone(_ mode: Int, _ owner: Int, _ severity: Finding.Severity) throws {
        let s = try sandbox(
            settings: """
                config_base: /srv/workstation/config-base
                vault: {url: 'https://vault.example.org', token_file: /etc/workstation/vault.token}

                """
        )
        try s.write("/etc/workstation/vault.token", "hvs.test\n", mode: mode, uid: owner)
        if owner == 0 { chown(s.path("/etc/workstation/vault.token"), 0, 0) }
        let found = Doctor(root: s.root, inputs: try s.inputs()).tokenFileChecks()
        #expect(found.map(\.severity) == [severity], "\(found)")
        #expect(!found.contains { $0.message.contains("hvs.test") }, "a token never reaches the output")
    }
}
