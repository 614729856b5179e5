import Foundation
import Testing

@testable import WorkstationCore

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
