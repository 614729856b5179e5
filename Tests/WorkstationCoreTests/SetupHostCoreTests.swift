import Foundation
import Testing

@testable import WorkstationCore

@Suite struct SecretGuardTests {
    @Test(arguments: [
        ("MEMORY_API_KEY", "*_KEY"), ("apiKey", "*_KEY"), ("CLAUDE_CODE_OAUTH_TOKEN", "*_TOKEN"),
        ("AWS_SECRET_ACCESS_KEY", "*_KEY"),
        ("client_secret", "*SECRET*"), ("DB_PASSWORD", "*PASSWORD*"), ("vault-token", "*_TOKEN"),
    ])
    func secretNames(name: String, pattern: String) {
        #expect(SecretGuard.secretName(name) == pattern)
    }

    @Test(arguments: [
        "PATH", "EDITOR", "apiKeyHelper", "KEYBOARD_LAYOUT", "TOKENIZER_MODE", "permissions", "DISABLE_TELEMETRY",
    ])
    func plainNames(name: String) {
        #expect(SecretGuard.secretName(name) == nil)
    }

    @Test(arguments: [
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "ghp_0123456789abcdefABCDEF0123456789abcd", "AKIAIOSFODNN7EXAMPLE",
        "hvs.CAESIJ0123456789abcdefghijkl", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl",
        "https://alice:hunter2@git.example.org/x.git", "https://ha.example.org/mcp?token=abcdef",
        "Q2xhdWRlQ29kZTEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg9Zk",
    ])
    func tokenShapedValues(value: String) {
        #expect(SecretGuard.tokenShaped(value) != nil)
    }

    @Test(arguments: [
        "vim", "/usr/local/bin/workstation", "https://git.example.org/infra.git",
        "Never commit secrets; ask before applying.",
        "1", "en_US.UTF-8", "0123456789abcdef0123456789abcdef01234567",
        "See docs.example.org/Handbook/Section2/WorkstationOnboardingGuide.html for details",
        "/opt/Tools/Release2024/bin/WorkstationHelperBinary-x86_64",
    ])
    func ordinaryValues(value: String) {
        #expect(SecretGuard.tokenShaped(value) == nil)
    }

    @Test func shellScanFindsAssignmentsAndLines() {
        let text = "# ~/.bashrc\nexport HISTSIZE=1000\nexport GITHUB_TOKEN=abc\nGPG_TTY=$(tty)\nAPI_KEY=\"$FROM_ENV\"\n"
        let findings = SecretGuard.scanShell(text)
        #expect(findings.map(\.key) == ["GITHUB_TOKEN"])
        #expect(findings.first?.line == 3)
    }

    @Test func jsonScanFindsEnvSecretsAndNestedTokens() {
        let v = ManagedValue.object([
            "env": .object(["MEMORY_API_KEY": .string("x"), "EDITOR": .string("vim")]),
            "mcp": .object(["url": .string("https://ha.example.org/api?token=abc")]),
            "apiKeyHelper": .string("/usr/local/bin/key-helper"),
        ])
        #expect(SecretGuard.scan(v).map(\.key) == ["env.MEMORY_API_KEY", "mcp.url"])
    }
}

@Suite struct ReachabilityTests {
    @Test func decodesTheKernelFormat() throws {
        // getfattr of `setfacl -m g:100:x` on a 0755 directory.
        let bytes: [UInt8] = [
            2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 4, 0, 5, 0, 255, 255, 255, 255, 8, 0, 1, 0, 100, 0, 0, 0,
            16, 0, 5, 0, 255, 255, 255, 255, 32, 0, 5, 0, 255, 255, 255, 255,
        ]
        let acl = try #require(ACLEntry.decode(Data(bytes)))
        #expect(acl.contains(ACLEntry(tag: .group, id: 100, perms: 1)))
        #expect(acl.contains(ACLEntry(tag: .mask, perms: 5)))
        #expect(ACLEntry.decode(Data([1, 0, 0, 0])) == nil)
    }

    let home = TraversedEntry(path: "/home/carol", kind: .directory, mode: 0o700, uid: 1500, gid: 1500, need: 1)

    @Test func modeBitsDecide() {
        #expect(home.allows(uid: 1500, gids: [1500]))
        #expect(!home.allows(uid: 1001, gids: [1001, 999]))
        let open = TraversedEntry(path: "/srv", kind: .directory, mode: 0o711, uid: 0, gid: 0, need: 1)
        #expect(open.allows(uid: 1001, gids: [1001]))
        // Owner bits alone decide for the owner, even when other would allow.
        let odd = TraversedEntry(path: "/x", kind: .directory, mode: 0o055, uid: 1001, gid: 0, need: 1)
        #expect(!odd.allows(uid: 1001, gids: [1001]))
        // A matching owning group without the bit denies, even when other has it.
        let grp = TraversedEntry(path: "/y", kind: .directory, mode: 0o705, uid: 0, gid: 50, need: 1)
        #expect(!grp.allows(uid: 1001, gids: [50]))
        #expect(grp.allows(uid: 1001, gids: [1001]))
    }

    @Test func aclGroupEntryAndMaskDecide() {
        let fixed = home.granting(group: 999, perms: 1)
        #expect(fixed.allows(uid: 1001, gids: [1001, 999]))
        #expect(!fixed.allows(uid: 1002, gids: [1002]))
        // The owning group gains nothing from the grant.
        #expect(!fixed.allows(uid: 1003, gids: [1500]) || home.allows(uid: 1003, gids: [1500]))
        // A mask without x masks the named group.
        var masked = fixed
        masked.acl = masked.acl.map { $0.tag == .mask ? ACLEntry(tag: .mask, perms: 4) : $0 }
        #expect(!masked.allows(uid: 1001, gids: [999]))
    }
}

@Suite struct SetupHostPlannerTests {
    func user(_ name: String, uid: Int, exists: Bool = true) -> DesiredUser {
        DesiredUser(
            entry: RosterEntry(osUser: name, authentikUser: name, k8sUser: name, tier: .powerUser),
            uid: uid,
            home: "/home/\(name)",
            groups: ["workstation"],
            ports: [:],
            accountExists: exists
        )
    }

    @Test func settingsKeysParseWithDefaults() throws {
        let s = try Settings.parse(
            Data(
                """
                setup_host:
                  packages: [acl, git]
                  profile_env: {EDITOR: vim}
                  managed_settings: {cleanupPeriodDays: 30, includeCoAuthoredBy: false, permissions: {deny: ["Read(~/.ssh/**)"]}}
                  reconcile_interval: 1h
                """.utf8
            ),
            file: "w.yaml"
        )
        #expect(s.setupHost.packages == ["acl", "git"])
        #expect(s.setupHost.profileEnvironment == [EnvironmentVariable(name: "EDITOR", value: "vim")])
        #expect(s.setupHost.managedSettings["cleanupPeriodDays"] == .integer(30))
        #expect(s.setupHost.managedSettings["includeCoAuthoredBy"] == .bool(false))
        #expect(s.setupHost.reconcileInterval == "1h")
        #expect(s.setupHost.managedDirectory == "/etc/claude-code")
    }

    @Test(arguments: [
        (
            "setup_host:\n  managed_settings: {claudeMd: hi}\n",
            "w.yaml:2:22: error: managed_settings must not set claudeMd"
        ),
        ("setup_host:\n  packages: [Git]\n", "w.yaml:2:14: error: 'Git' is not a Debian package name"),
        (
            "setup_host:\n  reconcile_interval: soon\n",
            "w.yaml:2:23: error: setup_host.reconcile_interval must be a span"
        ),
        (
            "setup_host:\n  profile_env: {VAULT_TOKEN: x}\n",
            "w.yaml:2:17: error: profile_env key VAULT_TOKEN looks like a secret (name matches *_TOKEN)"
        ),
        (
            "setup_host:\n  secret_files: [../x]\n",
            "w.yaml:2:18: error: secret file '../x' must be a path relative to the home"
        ),
    ])
    func badSettingsAreLocated(yaml: String, expected: String) {
        do {
            _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
            Issue.record("no error for \(yaml)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test func hygieneTightensLooseFilesAndReportsOwnersAndLinks() {
        let planner = Planner(settings: Settings())
        var o = HostSnapshot()
        let alice = user("alice", uid: 1001)
        o.paths["/home/alice/.claude"] = PathState(kind: .directory, mode: 0o700, uid: 1001)
        o.paths["/home/alice/.claude/settings.json"] = PathState(kind: .file, mode: 0o664, uid: 1001)
        o.paths["/home/alice/.claude/.credentials.json"] = PathState(kind: .file, mode: 0o600, uid: 1001)
        o.paths["/home/alice/.claude.json"] = PathState(kind: .file, mode: 0o644, uid: 0)
        o.paths["/home/alice/.vault-token"] = PathState(kind: .symlink, uid: 1001, linkTarget: "/etc/shadow")
        o.paths["/home/alice/.kube"] = PathState(kind: .symlink, uid: 1001, linkTarget: "/etc")
        let changes = planner.secretFileChanges(alice, o)
        #expect(
            changes.map(\.id.description) == [
                "secret:/home/alice/.claude/settings.json", "secret:/home/alice/.claude.json",
                "secret:/home/alice/.vault-token", "secret:/home/alice/.kube",
            ]
        )
        #expect(changes[0].kind == .update && changes[0].safety == .tighten)
        #expect(
            changes[0].action == .tightenHomeFile(user: "alice", path: "/home/alice/.claude/settings.json", mode: 0o700)
        )
        #expect(changes[1].kind == .conflict && changes[1].action == nil)
        #expect(changes[2].summary.contains("refused: /home/alice/.vault-token is a symlink to /etc/shadow"))
        #expect(changes[3].summary.contains("refused: /home/alice/.kube is a symlink to /etc"))
        #expect(planner.secretFileChanges(user("bob", uid: 1002, exists: false), o).isEmpty)
    }

    @Test func reachabilityReportsPerUserAndPlansOneFixPerDirectory() {
        let planner = Planner(settings: Settings())
        var o = HostSnapshot()
        o.groups = [GroupEntry(name: "workstation", gid: 999, members: ["alice"])]
        var d = DesiredState()
        d.users = [user("alice", uid: 1001), user("bob", uid: 1002, exists: false)]
        var host = SetupHostObservation()
        host.chains = [
            ReachChain(
                item: "/home/carol/.claude/skills",
                entries: [
                    TraversedEntry(path: "/", kind: .directory, mode: 0o755, uid: 0, gid: 0, need: 1),
                    TraversedEntry(path: "/home", kind: .directory, mode: 0o755, uid: 0, gid: 0, need: 1),
                    TraversedEntry(path: "/home/carol", kind: .directory, mode: 0o700, uid: 1500, gid: 1500, need: 1),
                    TraversedEntry(
                        path: "/home/carol/.claude",
                        kind: .directory,
                        mode: 0o755,
                        uid: 1500,
                        gid: 1500,
                        need: 1
                    ),
                    TraversedEntry(
                        path: "/home/carol/.claude/skills",
                        kind: .directory,
                        mode: 0o700,
                        uid: 1500,
                        gid: 1500,
                        need: 5
                    ),
                ]
            )
        ]
        let changes = planner.reachabilityChanges(d, o, host)
        #expect(
            changes.map(\.id.description) == [
                "reach:alice:/home/carol/.claude/skills", "reach:bob:/home/carol/.claude/skills",
                "acl:/home/carol", "acl:/home/carol/.claude/skills",
            ]
        )
        #expect(changes[2].action == .grantGroupACL(path: "/home/carol", group: "workstation", perms: "--x"))
        #expect(
            changes[3].action == .grantGroupACL(path: "/home/carol/.claude/skills", group: "workstation", perms: "r-x")
        )
        #expect(changes[2].safety == .additive)

        // Once granted, nothing is planned.
        host.chains[0].entries[2] = host.chains[0].entries[2].granting(group: 999, perms: 1)
        host.chains[0].entries[4] = host.chains[0].entries[4].granting(group: 999, perms: 5)
        #expect(planner.reachabilityChanges(d, o, host).isEmpty)
    }

    @Test func managedSettingsCarryTheGuidanceAndTheConfiguredKeys() throws {
        let settings = try Settings.parse(
            Data(
                """
                setup_host:
                  managed_settings: {cleanupPeriodDays: 30, includeCoAuthoredBy: false, permissions: {deny: ["Read(~/.ssh/**)"]}}
                  profile_env: {EDITOR: vim, GREETING: "it's ok"}
                """.utf8
            ),
            file: "w.yaml"
        )
        let planner = Planner(settings: settings)
        let data = try #require(planner.managedSettingsContent(guidance: Data("# Guidance\n".utf8)))
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(obj["claudeMd"] as? String == "# Guidance\n")
        #expect(obj["cleanupPeriodDays"] as? Int == 30)
        #expect(obj["includeCoAuthoredBy"] as? Bool == false)
        #expect(String(decoding: data, as: UTF8.self).contains("\"includeCoAuthoredBy\" : false"))
        #expect((obj["permissions"] as? [String: Any])?["deny"] as? [String] == ["Read(~/.ssh/**)"])
        #expect(
            String(decoding: planner.profileContent(), as: UTF8.self).hasSuffix(
                "export EDITOR='vim'\nexport GREETING='it'\\''s ok'\n"
            )
        )
        #expect(Planner(settings: Settings()).managedSettingsContent(guidance: nil) == nil)
    }

    @Test func guidanceWithATokenIsRefusedAtItsLine() {
        var host = SetupHostObservation()
        host.guidance = Data(
            "# Org guidance\n\nUse the key sk-ant-api03-abcdefghijklmnopqrstuvwxyz for the memory server.\n".utf8
        )
        host.displayPaths["/srv/workstation/config-base/CLAUDE.md"] = "/srv/workstation/config-base/CLAUDE.md"
        let (_, diags) = Planner(settings: Settings()).setupHostPlan(
            desired: DesiredState(),
            observed: HostSnapshot(),
            host: host
        )
        #expect(
            diags.map(\.description) == [
                "/srv/workstation/config-base/CLAUDE.md:3:1: error: the org guidance (copied into the managed layer) holds what looks like an Anthropic API key (sk-ant-...); \(SecretGuard.advice)"
            ]
        )
    }

    @Test func missingBaseItemsAreReportedOnceEvenWithoutChildren() {
        var host = SetupHostObservation()
        host.chains = [
            ReachChain(
                item: "/srv/workstation/config-base/rules",
                entries: [],
                problem: "is missing (nothing at /srv/workstation/config-base/rules)"
            )
        ]
        let changes = Planner(settings: Settings()).reachabilityChanges(DesiredState(), HostSnapshot(), host)
        #expect(changes.map(\.id.description) == ["reach:/srv/workstation/config-base/rules"])
        #expect(changes.first?.kind == .conflict)
    }

    @Test func deployUnitsMatchWhatSetupHostWrites() throws {
        let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy")
            .standardized
        let s = SetupHostSettings()
        #expect(
            try String(contentsOf: deploy.appendingPathComponent("workstation-reconcile.service"), encoding: .utf8)
                == ReconcileUnits.service(binary: SetupHostSettings.localBinary)
        )
        #expect(
            try String(contentsOf: deploy.appendingPathComponent("workstation-reconcile.timer"), encoding: .utf8)
                == ReconcileUnits.timer(interval: s.reconcileInterval)
        )
    }
}

@Suite struct PerUserTemplateTests {
    @Test func setupHostInstallsTheTemplateOnlyWhereNoneIsInstalled() throws {
        let planner = Planner(settings: Settings())
        let (fresh, _) = planner.setupHostPlan(
            desired: DesiredState(),
            observed: HostSnapshot(),
            host: SetupHostObservation()
        )
        let install = try #require(fresh.changes.first { $0.id == "file:/etc/systemd/system/t3-serve@.service" })
        #expect(install.kind == .create)
        guard case .writeFile(_, let content, let mode)? = install.action else {
            Issue.record("the template is not written")
            return
        }
        let text = String(decoding: content, as: UTF8.self)
        #expect(text.contains("User=%i\n") && text.contains("--port ${T3CODE_PORT}") && mode == 0o644)
        // An operator's own template, anywhere on the search path, is never replaced.
        for dir in planner.unitSearchPath {
            var host = SetupHostObservation()
            host.files[dir + "/t3-serve@.service"] = PathState(
                kind: .file,
                mode: 0o644,
                content: Data("[Service]\nExecStart=/opt/t3\n".utf8)
            )
            let (plan, _) = planner.setupHostPlan(desired: DesiredState(), observed: HostSnapshot(), host: host)
            #expect(!plan.changes.contains { $0.id.description.hasSuffix("t3-serve@.service") }, "\(dir)")
        }
    }
}
