import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// The machine-wide checks that do not fit a healthy sandbox's breakage table: the cgroup layout, kubelogin and the
/// integrations' token files (read from settings only; doctor's own run would talk to the services).
@Suite(.serialized) struct DoctorMachineChecksTests {
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
