import Foundation
import Testing

@testable import WorkstationCore

/// Settings that would widen access (admin or system groups, paths under homes or /tmp, a grant opening an admin's
/// home, another service's port) are refused at their line with the fix.
@Suite struct SettingsWideningTests {
    /// Each settings text must be refused with the fragment, at a located line of ws.yaml.
    @Test(arguments: [
        // Groups every managed account is put in.
        ("accounts:\n  group: sudo\n", 2, "accounts.group 'sudo' is an admin group"),
        ("accounts:\n  group: wheel\n", 2, "is an admin group"),
        ("accounts:\n  group: adm\n", 2, "is an admin group"),
        ("accounts:\n  group: root\n", 2, "is an admin group"),
        ("accounts:\n  group: users\n", 2, "is a system group's name"),
        ("accounts:\n  admin_group: ops\n  group: ops\n", 3, "is an admin group"),
        ("accounts:\n  group: code-shared\n", 2, "is in accounts.forbidden_groups"),
        (
            "accounts:\n  tier_groups:\n    power-user: docker\n", 3,
            "accounts.tier_groups.power-user 'docker' is an admin group"
        ),
        ("accounts:\n  tier_groups:\n    namespace-owner: systemd-journal\n", 3, "is an admin group"),
        ("cutover:\n  shared_code_group: team\naccounts:\n  group: team\n", 4, "is cutover.shared_code_group"),
        // Paths, normalized before they are placed.
        ("derived:\n  ttyd_user_map: /etc//shadow\n", 2, "derived file /etc/shadow would overwrite a system file"),
        ("derived:\n  ttyd_user_map: /etc/./passwd\n", 2, "derived file /etc/passwd would overwrite"),
        (
            "state_directory: /var/lib/../../home/alice/state\n", 1,
            "state_directory /home/alice/state is under home_root /home"
        ),
        ("state_directory: /tmp/ws\n", 1, "state_directory /tmp/ws is under /tmp"),
        ("state_directory: /var/lib\n", 1, "state_directory /var/lib is a system directory"),
        (
            "offboard:\n  backup_directory: /var/tmp/backups\n", 2,
            "offboard.backup_directory /var/tmp/backups is under /var/tmp"
        ),
        (
            "offboard:\n  backup_directory: /home//alice/backups/\n", 2,
            "offboard.backup_directory /home/alice/backups is under home_root"
        ),
        ("setup_host:\n  skel: /dev/shm/skel\n", 2, "setup_host.skel /dev/shm/skel is under /dev/shm"),
        (
            "setup_host:\n  managed_directory: /home/alice/.claude-code\n", 2,
            "setup_host.managed_directory /home/alice/.claude-code is under home_root"
        ),
        ("setup_host:\n  binary: /tmp/workstation\n", 2, "setup_host.binary /tmp/workstation is under /tmp"),
        (
            "authentik:\n  url: https://auth.example.org\n  jwks_file: /tmp/../tmp/jwks.json\n", 3,
            "authentik.jwks_file /tmp/jwks.json is under /tmp"
        ),
        (
            "vault:\n  url: https://vault.example.org\n  token_file: /home/alice/.vault-token\n", 3,
            "vault.token_file /home/alice/.vault-token is under home_root"
        ),
        (
            "vault:\n  url: https://vault.example.org\n  ca_file: /tmp/ca.pem\n", 3,
            "vault.ca_file /tmp/ca.pem is under /tmp"
        ),
        ("config_base: /tmp/base\n", 1, "config_base /tmp/base is under /tmp"),
        ("config_base: /etc\n", 1, "config_base /etc is a system directory"),
        ("accounts:\n  home_root: /home/../etc\n", 2, "accounts.home_root /etc is a system directory"),
        // Ports other listeners hold.
        (
            "units:\n  - {template: t3-serve@, port_range: [9000, 9999], port_env: T3CODE_PORT}\n", 2,
            "holds port 9464, where dispatch.metrics_listen"
        ),
        (
            "dispatch:\n  metrics_listen: 127.0.0.1:3800\n", 0,
            "holds port 3800, where dispatch.metrics_listen (127.0.0.1:3800)"
        ),
        ("vault:\n  url: http://127.0.0.1:3790\n", 0, "holds port 3790, where vault.url"),
        (
            "units:\n  - {template: t3-serve@, port_range: [3774, 3873], port_env: T3CODE_PORT}\n  - {template: pw@, port_range: [3800, 3900], port_env: PW_PORT}\n",
            3, "overlaps 3774-3873 of t3-serve@"
        ),
    ])
    func wideningSettingsAreRefusedAtTheirLine(_ yaml: String, _ line: Int, _ fragment: String) {
        let error = #expect(throws: ValidationFailure.self) { try Settings.parse(Data(yaml.utf8), file: "ws.yaml") }
        let found = error?.diagnostics.first { $0.message.contains(fragment) }
        #expect(found != nil, "\(yaml): \(String(describing: error))")
        if line > 0 { #expect(found?.location.line == line, "\(yaml): \(String(describing: found))") }
    }

    @Test func pathsAreKeptNormalized() throws {
        let s = try Settings.parse(
            Data(
                "state_directory: /var//lib/./workstation/\nderived:\n  dispatch: /etc/t3-serve/x/../dispatch.json\n"
                    .utf8
            ),
            file: "ws.yaml"
        )
        #expect(s.stateDirectory == "/var/lib/workstation" && s.derived.dispatch == "/etc/t3-serve/dispatch.json")
        #expect(normalizedAbsolutePath("/../..//a/./b/../c/") == "/a/c")
        #expect(normalizedAbsolutePath("relative/path") == nil)
    }

    @Test func aRosterPinOnAnotherServicesPortIsRefused() throws {
        let settings = try Settings.parse(
            Data("units:\n  - {template: t3-serve@, port_range: [3774, 3873], port_env: T3CODE_PORT}\n".utf8),
            file: "ws.yaml"
        )
        let error = #expect(throws: ValidationFailure.self) {
            try Roster.parse(
                Data("users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user, port: 9464 }\n".utf8),
                file: "roster.yaml",
                settings: settings
            )
        }
        #expect(
            error?.description.contains(
                "roster.yaml:2:68: error: port 9464 of 'alice' is where dispatch.metrics_listen"
            ) == true,
            "\(String(describing: error))"
        )
    }

    static func host() -> HostSnapshot {
        var host = PlannerTests.freshHost()
        host.groups.append(GroupEntry(name: "ssl-cert", gid: 110, members: ["postgres"]))
        host.groups.append(GroupEntry(name: "team", gid: 1500, members: []))
        host.groups.append(GroupEntry(name: "erin", gid: 1600, members: []))
        host.passwd.append(PasswdEntry(name: "erin", uid: 1600, gid: 1600, home: "/home/erin", shell: "/bin/bash"))
        host.passwd.append(PasswdEntry(name: "lead", uid: 1700, gid: 1700, home: "/home/lead", shell: "/bin/bash"))
        host.groups.append(GroupEntry(name: "workstation", gid: 904, members: ["alice", "someone-by-hand"]))
        return host
    }

    @Test(arguments: [
        ("accounts:\n  group: ssl-cert\n", "accounts.group 'ssl-cert' is a system group on this host (gid 110"),
        (
            "accounts:\n  tier_groups:\n    power-user: erin\n",
            "accounts.tier_groups.power-user 'erin' is the private group of account 'erin'"
        ),
        (
            "config_base: /home/erin/base\n",
            "config_base /home/erin/base is inside the home of 'erin' (/home/erin), who is not an admin"
        ),
        ("config_base: /home/frank/base\n", "config_base /home/frank/base is under home_root /home in no admin's home"),
        ("config_base: /home/alice/base\n", "inside the home of"),
    ])
    func settingsTheHostShowsToWidenAccessAreRefused(_ yaml: String, _ fragment: String) throws {
        let settings = try Settings.parse(Data(yaml.utf8), file: "ws.yaml")
        var host = Self.host()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"))
        let roster = try Roster.parse(
            Data(
                "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user }\n  lead: { authentik_user: l, k8s_user: l, tier: admin }\n"
                    .utf8
            ),
            file: "roster.yaml",
            settings: settings
        )
        let d = desire(roster: roster, settings: settings, snapshot: host).diagnostics
        #expect(
            d.contains { $0.message.contains(fragment) && $0.location.file == "ws.yaml" && $0.location.line > 0 },
            "\(d)"
        )
    }

    @Test func workstationsOwnGroupsAndAnAdminsHomeAreAccepted() throws {
        for yaml in [
            "config_base: /home/lead/.claude\n",
            "config_base: /srv/workstation/config-base\naccounts:\n  group: team\n",
        ] {
            let settings = try Settings.parse(Data(yaml.utf8), file: "ws.yaml")
            let roster = try Roster.parse(
                Data("users:\n  lead: { authentik_user: l, k8s_user: l, tier: admin }\n".utf8),
                file: "roster.yaml",
                settings: settings
            )
            #expect(desire(roster: roster, settings: settings, snapshot: Self.host()).diagnostics.isEmpty, "\(yaml)")
        }
    }

    @Test func aGrantOpeningTheAdminsHomeIsRefusedWhileACredentialThereIsReadable() {
        var settings = Settings()
        settings.configBase = "/home/lead/base"
        let planner = Planner(settings: settings)
        var o = HostSnapshot()
        o.groups = [GroupEntry(name: "workstation", gid: 999, members: ["alice"])]
        var d = DesiredState()
        d.users = [
            DesiredUser(
                entry: RosterEntry(osUser: "alice", authentikUser: "a", k8sUser: "a", tier: .powerUser),
                uid: 1001,
                home: "/home/alice",
                groups: ["workstation"],
                ports: [:],
                accountExists: true
            )
        ]
        var host = SetupHostObservation()
        host.baseHome = "/home/lead"
        host.chains = [
            ReachChain(
                item: "/home/lead/base/skills",
                entries: [
                    TraversedEntry(path: "/home", kind: .directory, mode: 0o755, uid: 0, gid: 0, need: 1),
                    TraversedEntry(path: "/home/lead", kind: .directory, mode: 0o700, uid: 1700, gid: 1700, need: 1),
                    TraversedEntry(
                        path: "/home/lead/base",
                        kind: .directory,
                        mode: 0o755,
                        uid: 1700,
                        gid: 1700,
                        need: 1
                    ),
                    TraversedEntry(
                        path: "/home/lead/base/skills",
                        kind: .directory,
                        mode: 0o755,
                        uid: 1700,
                        gid: 1700,
                        need: 5
                    ),
                ]
            )
        ]
        for (rel, mode, refused) in [
            (".vault-token", UInt32(0o644), true), (".ssh/id_ed25519", 0o604, true), (".netrc", 0o640, false),
            (".claude.json", 0o600, false),
        ] {
            host.files = [joinPath("/home/lead", rel): PathState(kind: .file, mode: mode, uid: 1700, gid: 1700)]
            let acl = planner.reachabilityChanges(d, o, host).first { $0.id == "acl:/home/lead" }
            #expect(acl?.kind == (refused ? .conflict : .update), "\(rel) \(octal(mode))")
            #expect((acl?.action == nil) == refused)
            if refused { #expect(acl?.reason?.contains("chmod go-rwx /home/lead/\(rel)") == true) }
        }
    }
}
