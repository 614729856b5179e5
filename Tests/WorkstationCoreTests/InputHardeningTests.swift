import Foundation
import Testing

@testable import WorkstationCore

/// Names that pass for one another (UTS #39), text on root's terminal, and settings that would widen access.
@Suite struct LookAlikeTests {
    @Test(arguments: [
        ("alice", "ALICE"), ("alice", "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}"), ("alice", "\u{0430}lice"),
        ("bob", "\u{044C}\u{043E}\u{044C}"),
        ("strasse", "stra\u{DF}e"), ("kelvin", "\u{212A}elvin"), ("office", "o\u{FB03}ce"), ("alice", "a1ice"),
        ("bob", "b0b"),
        ("modern", "rnodern"), ("a-b", "a\u{2010}b"), ("a-b", "a\u{2212}b"),
        ("pope", "\u{0440}\u{043E}\u{0440}\u{0435}"), ("alice", "al\u{200B}ice"),
        ("sigma", "\u{0455}igma"), ("xyz", "\u{0445}\u{0443}z"),
    ])
    func lookAlikesShareASkeleton(_ a: String, _ b: String) {
        #expect(lookAlikeSkeleton(a) == lookAlikeSkeleton(b), "\(a) / \(printable(b))")
    }

    @Test(arguments: [
        ("alice", "alicia"), ("bob", "rob"), ("j\u{FC}rgen", "jurgen"), ("dave", "dove"), ("ann", "anna"),
        ("f001", "f002"),
    ])
    func differentNamesKeepDifferentSkeletons(_ a: String, _ b: String) {
        #expect(lookAlikeSkeleton(a) != lookAlikeSkeleton(b), "\(a) / \(b)")
    }

    @Test(arguments: [
        ("\u{0430}lice", "Latin", "Cyrillic"), ("b\u{03BF}b", "Latin", "Greek"), ("\u{0561}lice", "Latin", "Armenian"),
        ("\u{03B1}\u{0430}", "Greek", "Cyrillic"),
    ])
    func mixedScriptsAreNamed(_ name: String, _ first: String, _ second: String) throws {
        let (a, b) = try #require(mixedScripts(name))
        #expect(a.rawValue == first && b.rawValue == second)
        #expect(identityProblem(name)?.contains("mixes \(first) and \(second) letters") == true)
    }

    @Test(arguments: [
        "alice", "j\u{FC}rgen", "\u{0430}\u{043B}\u{0438}\u{0441}\u{0430}", "\u{5C71}\u{7530}\u{3055}\u{3093}",
        "\u{AE40}\u{91D1}", "bob.smith+1",
    ])
    func singleScriptNamesAreNotMixed(_ name: String) {
        #expect(mixedScripts(name) == nil, "\(name)")
    }
}

@Suite struct TerminalTextTests {
    @Test(arguments: [
        ("plain", "plain"), ("a\u{1B}[2Jb", "a\\u{1b}[2Jb"),
        ("title\u{1B}]0;pwned\u{07}", "title\\u{1b}]0;pwned\\u{7}"),
        ("csi\u{9B}31m", "csi\\u{9b}31m"), ("del\u{7F}", "del\\u{7f}"), ("evil\u{202E}txt.exe", "evil\\u{202e}txt.exe"),
        ("iso\u{2066}late", "iso\\u{2066}late"), ("zero\u{200B}width", "zero\\u{200b}width"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("tab\there", "tab\\u{9}here"), ("cr\rover", "cr\\u{d}over"), ("two\nlines", "two\nlines"),
        ("j\u{FC}rgen \u{5C71}", "j\u{FC}rgen \u{5C71}"),
        ("unassigned\u{E0080}", "unassigned\\u{e0080}"),
    ])
    func controlsAndBidiAreEscapedNewlinesKept(_ raw: String, _ shown: String) {
        #expect(terminalSafe(raw) == shown)
        #expect(!terminalSafe(raw, keepingNewlines: false).contains("\n"))
        #expect(TerminalText(raw).rendered == shown)
    }

    @Test func onlyTheRenderersOwnColoursAreSequences() {
        var t = TerminalText()
        t.append("+", sgr: "32")
        t.append(" link -> \u{1B}[31mred\u{1B}[0m")
        t.append("x", sgr: "1m\u{1B}]0;")  // not SGR parameters: written plain
        #expect(t.rendered == "\u{1B}[32m+\u{1B}[0m link -> \\u{1b}[31mred\\u{1b}[0mx")
    }

    @Test func aPlanShowsHostileNamesEscapedAndOnTheirLines() {
        var plan = Plan()
        plan.changes = [
            Change(
                id: .file("/x"),
                user: "al\u{1B}]0;x\u{07}",
                kind: .conflict,
                safety: .additive,
                summary: "link to /srv/\u{1B}[2J\nNo changes: forged",
                fields: [FieldChange("target", "a\u{202E}b", "c\rd")],
                reason: "proc \u{9B}name"
            )
        ]
        plan.notes = ["note\u{1B}[1A"]
        let text = PlanRenderer.humanText(plan, color: true).rendered
        #expect(!text.unicodeScalars.contains { $0 == "\u{9B}" || $0 == "\u{202E}" || $0 == "\r" || $0 == "\u{07}" })
        #expect(text.components(separatedBy: "\u{1B}").count == 3, "only the symbol's colour and its reset: \(text)")
        #expect(!text.contains("\nNo changes: forged"))
        #expect(text.contains("link to /srv/\\u{1b}[2J\\u{a}No changes: forged"))
    }

    @Test func jsonKeepsItsValueAndEscapesWhatATerminalActsOn() throws {
        let obj: [String: Any] = ["name": "a\u{1B}b\u{9B}c\u{202E}d\u{7F}e\u{E0080}"]
        let text = jsonText(obj)
        #expect(
            !text.unicodeScalars.contains {
                $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x202E || $0.value == 0x7F || $0.value == 0xE0080
            }
        )
        #expect(text.contains("\\u202e") && text.contains("\\udb40\\udc80"))
        let back = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        #expect(back?["name"] == obj["name"] as? String)
    }
}

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
        var host = PlannerFixtureTests.freshHost()
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
