import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

extension TempRoot {
    /// Seeds a fresh Debian-like host and a dpkg database listing the tool manifest as installed.
    func seedHost(settings: Settings = Settings(), packages: [String] = ["acl", "git", "git-crypt"]) throws {
        try SandboxRoot.seed(HostRoot(path), settings: settings)
        try write(
            "/var/lib/dpkg/status",
            packages.map { "Package: \($0)\nStatus: install ok installed\nArchitecture: amd64\n" }.joined(
                separator: "\n"
            )
        )
    }

    /// Reads `hostPath` the way a process on that host would: symlinks (absolute ones included) resolved under the root.
    func readThroughLinks(_ hostPath: String) -> String? {
        var parts = hostPath.split(separator: "/").map(String.init)
        var current = ""
        var hops = 0
        while !parts.isEmpty {
            let comp = parts.removeFirst()
            let next = current + "/" + comp
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path + next) {
                hops += 1
                if hops > 40 { return nil }
                if target.hasPrefix("/") { current = "" }
                parts = target.split(separator: "/").map(String.init) + parts
            } else {
                current = next
            }
        }
        return read(current)
    }

    func mode(_ hostPath: String) -> (mode: UInt32, uid: UInt32) {
        var st = stat()
        lstat(file(hostPath), &st)
        return (UInt32(st.st_mode) & 0o7777, st.st_uid)
    }

    func passwdEntry(_ name: String) -> [String]? {
        read("/etc/passwd")?.split(separator: "\n").map {
            $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }.first { $0[0] == name }
    }

    func gid(ofGroup name: String) -> String? {
        read("/etc/group")?.split(separator: "\n").map {
            $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }.first { $0[0] == name }?[2]
    }
}

@Suite(.serialized) struct SetupHostEndToEndTests {
    let roster = Repository.examples.appendingPathComponent("roster.yaml").path
    let settings = Repository.examples.appendingPathComponent("workstation.yaml").path
    let base = "/srv/workstation/config-base"

    func args(_ command: String, _ root: TempRoot, settings: String? = nil, _ extra: String...) -> [String] {
        [command, "--roster", roster, "--settings", settings ?? self.settings, "--root", root.path] + extra
    }

    @Test func setupHostThenApplyInheritsLiveAndConverges() throws {
        let root = try TempRoot()
        try root.seedHost()
        let setup = try CLI.run(args("setup-host", root))
        #expect(setup.status == 0, "\(setup.stdout)\n\(setup.stderr)")

        // The managed layer: CLAUDE.md links into the base, claudeMd carries the same guidance.
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: root.file("/etc/claude-code/CLAUDE.md"))
                == "\(base)/CLAUDE.md"
        )
        let managed = try #require(root.read("/etc/claude-code/managed-settings.json"))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(managed.utf8)) as? [String: Any])
        #expect(obj["claudeMd"] as? String == root.read("\(base)/CLAUDE.md"))
        #expect(root.mode("/etc/claude-code/managed-settings.json").mode == 0o644)
        // Skel links, so useradd -m copies links; the reconcile units, installed as shipped in deploy/ and enabled.
        for item in ["skills", "rules", "agents", "commands"] {
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: root.file("/etc/skel/.claude/\(item)"))
                    == "\(base)/\(item)"
            )
        }
        let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy")
            .standardized
        for unit in ["workstation-reconcile.service", "workstation-reconcile.timer"] {
            #expect(
                root.read("/etc/systemd/system/\(unit)")
                    == (try String(contentsOf: deploy.appendingPathComponent(unit), encoding: .utf8))
            )
        }
        #expect(
            try FileManager.default.destinationOfSymbolicLink(
                atPath: root.file("/etc/systemd/system/timers.target.wants/workstation-reconcile.timer")
            )
                == "/etc/systemd/system/workstation-reconcile.timer"
        )

        let apply = try CLI.run(args("apply", root))
        #expect(apply.status == 0, "\(apply.stdout)\n\(apply.stderr)")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: root.file("/home/alice/.claude/skills"))
                == "\(base)/skills"
        )
        #expect(root.mode("/home/alice/.claude").mode == 0o700)

        // The lead edits a skill: the child's view shows it, nothing re-run.
        try root.write("\(base)/skills/review/SKILL.md", "---\nname: review\n---\nEdited by the lead.\n")
        #expect(
            root.readThroughLinks("/home/alice/.claude/skills/review/SKILL.md")
                == "---\nname: review\n---\nEdited by the lead.\n"
        )
        #expect(
            root.readThroughLinks("/home/bob-dev/.claude/skills/review/SKILL.md")?.contains("Edited by the lead.")
                == true
        )

        let again = try CLI.run(args("setup-host", root, "--plan", "--detailed-exitcode"))
        #expect(again.status == 0, "\(again.stdout)")
        #expect(again.stdout.contains("No changes"))
        let core = try CLI.run(args("plan", root, "--detailed-exitcode"))
        #expect(core.status == 0, "\(core.stdout)")

        // The org guidance is live through the managed CLAUDE.md link; the claudeMd copy is the one thing to refresh.
        try root.write("\(base)/CLAUDE.md", "# Org guidance\n\nEdited.\n")
        #expect(root.readThroughLinks("/etc/claude-code/CLAUDE.md") == "# Org guidance\n\nEdited.\n")
        let refresh = try CLI.run(args("setup-host", root, "--plan", "--detailed-exitcode", "--json"))
        #expect(refresh.status == 2)
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(refresh.stdout.utf8)) as? [String: Any])
        let ids = (plan["changes"] as? [[String: Any]] ?? []).filter { $0["actionable"] as? Bool == true }.compactMap {
            $0["id"] as? String
        }
        #expect(ids == ["file:/etc/claude-code/managed-settings.json"])
    }

    @Test func packagesMissingAreReportedNotInstalledUnderRoot() throws {
        let root = try TempRoot()
        try root.seedHost(packages: ["acl", "git"])
        let plan = try CLI.run(args("setup-host", root, "--plan"))
        #expect(plan.status == 0)
        #expect(
            plan.stdout.contains("missing packages from the tool manifest: git-crypt [additive]\n"),
            "\(plan.stdout)"
        )
        #expect(
            plan.stdout.contains(
                "run workstation setup-host --roster \(roster) --settings \(settings) --root \(root.path) --install-packages"
            ),
            "the suggested command acts on the same root: \(plan.stdout)"
        )
        let install = try CLI.run(args("setup-host", root, "--plan", "--install-packages"))
        #expect(install.stdout.contains("apt-get cannot install into a --root prefix"))
    }

    // MARK: secret guard

    func refused(_ root: TempRoot, settings: String? = nil, _ expected: [String]) throws {
        let before = root.snapshot()
        let r = try CLI.run(args("setup-host", root, settings: settings))
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        for e in expected { #expect(r.stderr.contains(e), "missing '\(e)' in:\n\(r.stderr)") }
        #expect(r.stderr.contains("nothing was changed"))
        let after = root.snapshot()
        #expect(before.differences(to: after).isEmpty, "\(before.differences(to: after))")
    }

    @Test func guardRefusesAnEnvSecretInManagedSettings() throws {
        let root = try TempRoot()
        try root.seedHost()
        try root.write(
            "/cfg/workstation.yaml",
            """
            config_base: /srv/workstation/config-base
            setup_host:
              managed_settings:
                env:
                  DISABLE_TELEMETRY: "1"
                  MEMORY_API_KEY: abc123
            """
        )
        try refused(
            root,
            settings: root.file("/cfg/workstation.yaml"),
            [
                root.file("/cfg/workstation.yaml")
                    + ":6:7: error: managed setting key env.MEMORY_API_KEY looks like a secret (name matches *_KEY)",
                "readable by every user",
            ]
        )
    }

    @Test func guardRefusesATokenInTheProfileEnvironment() throws {
        let root = try TempRoot()
        try root.seedHost()
        try root.write(
            "/cfg/workstation.yaml",
            """
            setup_host:
              profile_env:
                EDITOR: vim
                GIT_REMOTE: https://alice:s3cretpass@git.example.org/infra.git
            """
        )
        try refused(
            root,
            settings: root.file("/cfg/workstation.yaml"),
            [":4:17: error: profile_env key GIT_REMOTE has a value that looks like a URL with a password in it"]
        )
    }

    @Test func guardRefusesASecretInASkelFile() throws {
        let root = try TempRoot()
        try root.seedHost()
        try root.write(
            "/etc/skel/.bashrc",
            "# ~/.bashrc\nexport HISTSIZE=1000\nexport GITHUB_TOKEN=ghp_0123456789abcdefABCDEF0123456789abcd\n"
        )
        try refused(
            root,
            [
                root.file("/etc/skel/.bashrc")
                    + ":3:1: error: skel file (copied into every new home) key GITHUB_TOKEN looks like a secret (name matches *_TOKEN)"
            ]
        )
    }

    @Test func guardRefusesTheLeakInAForeignManagedSettingsFile() throws {
        let root = try TempRoot()
        try root.seedHost()
        try root.write(
            "/etc/claude-code/managed-settings.json",
            "{\n  \"env\": {\n    \"ANTHROPIC_API_KEY\": \"sk-ant-api03-abcdefghijklmnopqrstuvwxyz\"\n  }\n}\n"
        )
        try refused(
            root,
            [
                root.file("/etc/claude-code/managed-settings.json")
                    + ":3:1: error: managed setting key env.ANTHROPIC_API_KEY looks like a secret"
            ]
        )
    }

    @Test func aForeignManagedSettingsFileIsKeptAndADropInWritten() throws {
        let root = try TempRoot()
        try root.seedHost()
        let foreign = "{\n  \"permissions\": {\"deny\": [\"Bash(rm -rf /)\"]}\n}\n"
        try root.write("/etc/claude-code/managed-settings.json", foreign)
        let r = try CLI.run(args("setup-host", root))
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("was not written by workstation and is kept"))
        #expect(root.read("/etc/claude-code/managed-settings.json") == foreign)
        #expect(root.read("/etc/claude-code/managed-settings.d/50-workstation.json")?.contains("claudeMd") == true)
        let again = try CLI.run(args("setup-host", root, "--plan", "--detailed-exitcode"))
        #expect(again.status == 0, "\(again.stdout)")
    }

    // MARK: reachability

    @Test func aBaseInsideA0700HomeIsReportedAndFixedWithAnACL() throws {
        let root = try TempRoot()
        try root.seedHost()
        let carolBase = "/home/carol/.claude"
        for (rel, text) in [
            ("CLAUDE.md", "# Org guidance\n"), ("skills/review/SKILL.md", "review\n"), ("rules/style.md", "style\n"),
            ("agents/helper.md", "helper\n"), ("commands/status.md", "status\n"),
        ] {
            try root.write("\(carolBase)/\(rel)", text)
        }
        for d in ["/home/carol", carolBase] {
            chown(root.file(d), 1500, 1500)
            chmod(root.file(d), 0o700)
        }
        try root.write("/cfg/workstation.yaml", "config_base: \(carolBase)\n")
        let settings = root.file("/cfg/workstation.yaml")

        let untouched = root.snapshot()
        let plan = try CLI.run(args("setup-host", root, settings: settings, "--plan", "--detailed-exitcode"))
        #expect(plan.status == 2)
        let afterPlan = root.snapshot()
        #expect(
            untouched.differences(to: afterPlan).isEmpty,
            "--plan must only read: \(untouched.differences(to: afterPlan))"
        )
        #expect(
            plan.stdout.contains(
                "alice cannot read /home/carol/.claude/skills: blocked at /home/carol (mode 0700, owner uid 1500"
            )
        )
        #expect(plan.stdout.contains("bob-dev cannot read /home/carol/.claude/CLAUDE.md: blocked at /home/carol"))
        #expect(
            plan.stdout.contains(
                "grant group workstation --x on /home/carol so alice, bob-dev can reach the config base"
            )
        )
        #expect(plan.stdout.contains("grant group workstation --x on /home/carol/.claude "))
        #expect(!plan.stdout.contains("on /home/carol/.claude/skills"))

        let setup = try CLI.run(args("setup-host", root, settings: settings))
        #expect(setup.status == 0, "\(setup.stdout)\n\(setup.stderr)")
        let gid = try #require(root.gid(ofGroup: "workstation"))
        for d in ["/home/carol", carolBase] {
            let acl = try #require(try? TestProcess.run("/usr/bin/getfacl", ["-n", "-c", root.file(d)]).stdout)
            #expect(acl.contains("group:\(gid):--x"), "\(acl)")
            #expect(acl.contains("user::rwx") && acl.contains("group::---") && acl.contains("other::---"), "\(acl)")
        }

        // Real kernel check after apply: alice (in group workstation) reads the skills; a uid without it cannot.
        let apply = try CLI.run(args("apply", root, settings: settings))
        #expect(apply.status == 0, "\(apply.stderr)")
        let alice = try #require(root.passwdEntry("alice"))
        let asAlice = try TestProcess.run(
            "/usr/bin/setpriv",
            [
                "--reuid=\(alice[2])", "--regid=\(alice[3])", "--groups=\(gid)", "cat",
                root.file("\(carolBase)/skills/review/SKILL.md"),
            ]
        ).status
        #expect(asAlice == 0)
        let outsider = try TestProcess.run(
            "/usr/bin/setpriv",
            [
                "--reuid=\(alice[2])", "--regid=\(alice[3])", "--clear-groups", "cat",
                root.file("\(carolBase)/skills/review/SKILL.md"),
            ]
        ).status
        #expect(outsider != 0)

        let again = try CLI.run(args("setup-host", root, settings: settings, "--plan", "--detailed-exitcode"))
        #expect(again.status == 0, "\(again.stdout)")
        #expect(!again.stdout.contains("cannot read"))
    }

    // MARK: secret-file hygiene

    @Test func looseSecretFilesAreTightenedAndAWrongOwnerIsOnlyReported() throws {
        let root = try TempRoot()
        try root.seedHost()
        #expect(try CLI.run(args("apply", root)).status == 0)
        let alice = try #require(root.passwdEntry("alice"))
        let bob = try #require(root.passwdEntry("bob-dev"))
        // The spec's leak: a group-readable settings.json with an API key in env.
        try root.write("/home/alice/.claude/settings.json", "{\"env\": {\"MEMORY_API_KEY\": \"k-123\"}}\n")
        chown(root.file("/home/alice/.claude/settings.json"), uid_t(alice[2])!, gid_t(alice[3])!)
        chmod(root.file("/home/alice/.claude/settings.json"), 0o664)
        try root.write("/home/alice/.vault-token", "hvs.token\n")
        chown(root.file("/home/alice/.vault-token"), uid_t(bob[2])!, gid_t(bob[3])!)
        chmod(root.file("/home/alice/.vault-token"), 0o600)

        let plan = try CLI.run(args("setup-host", root, "--plan"))
        #expect(
            plan.stdout.contains("~ tighten /home/alice/.claude/settings.json to 0600: it holds credentials [tighten]")
        )
        #expect(plan.stdout.contains("mode: 0664 -> 0600"))
        #expect(
            plan.stdout.contains("? /home/alice/.vault-token is owned by uid \(bob[2]), not alice (uid \(alice[2]))")
        )
        #expect(plan.stdout.contains("workstation never chowns a secret file"))

        // apply runs the tighten class too: the timer heals a file chezmoi rewrites loose.
        let apply = try CLI.run(args("apply", root))
        #expect(apply.status == 0, "\(apply.stdout)\n\(apply.stderr)")
        #expect(root.mode("/home/alice/.claude/settings.json").mode == 0o600)
        #expect(root.mode("/home/alice/.vault-token") == (0o600, UInt32(bob[2])!))
        #expect(root.read("/home/alice/.claude/settings.json") == "{\"env\": {\"MEMORY_API_KEY\": \"k-123\"}}\n")
    }
}
