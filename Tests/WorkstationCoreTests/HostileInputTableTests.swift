import Foundation
import Testing

@testable import WorkstationCore

/// Inputs that once let root write where it must not, each refused with a located error.
@Suite struct HostileInputTableTests {
    static let base = PlannerTests.freshHost

    func diagnostics(_ yaml: String, _ host: HostSnapshot) throws -> [String] {
        let r = try Roster.parse(Data(yaml.utf8), file: "roster.yaml")
        return desire(roster: r, settings: Settings(), snapshot: host).diagnostics.map(\.description)
    }

    @Test func anExistingAccountWhoseHomeIsASystemDirectoryIsRefused() throws {
        for home in ["/", "/etc", "/home", "/srv/dave"] {
            var host = Self.base()
            host.passwd.append(PasswdEntry(name: "dave", uid: 1005, gid: 1005, home: home, shell: "/bin/bash"))
            let d = try diagnostics(
                "users:\n  dave: { authentik_user: dave, k8s_user: dave, tier: power-user }\n",
                host
            )
            #expect(
                d.count == 1
                    && d[0].hasPrefix(
                        "roster.yaml:2:3: error: 'dave' exists with home \(home), which is not a directory directly under accounts.home_root"
                    ),
                "\(home): \(d)"
            )
        }
    }

    @Test func systemAndPrivateGroupsAreNotExtraGroups() throws {
        var host = Self.base()
        host.groups.append(GroupEntry(name: "disk", gid: 6, members: []))
        host.passwd.append(PasswdEntry(name: "erin", uid: 1003, gid: 1003, home: "/home/erin", shell: "/bin/bash"))
        host.groups.append(GroupEntry(name: "erin", gid: 1003, members: []))
        host.groups.append(GroupEntry(name: "team", gid: 1500, members: []))
        let d = try diagnostics(
            "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user, groups: [disk, erin, team] }\n",
            host
        )
        #expect(
            d == [
                "roster.yaml:2:3: error: group 'disk' of 'alice' is a system group (gid 6); extra groups must be ordinary groups (gid 1000 or above)",
                "roster.yaml:2:3: error: group 'erin' of 'alice' is the private group of account 'erin'; membership would give access to their files",
            ]
        )
    }

    @Test func portsOutsideTheRangeAreNeverAdopted() throws {
        var host = Self.base()
        host.paths["/etc/t3-serve/dispatch.json"] = PathState(
            kind: .file,
            content: Data(#"{"a": {"port": 22}, "b": {"port": -7}}"#.utf8)
        )
        host.state.ports = ["t3-serve@": ["bob": 0]]
        let r = try Roster.parse(
            Data(
                "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user }\n  bob: { authentik_user: b, k8s_user: b, tier: power-user }\n"
                    .utf8
            ),
            file: "r"
        )
        let d = desire(roster: r, settings: Settings(), snapshot: host)
        #expect(d.ports["t3-serve@"] == ["alice": 3774, "bob": 3775])
    }

    @Test(arguments: [
        (
            "derived:\n  ttyd_user_map: /home/alice/.cache/map\n",
            "derived file /home/alice/.cache/map is under home_root /home"
        ),
        ("derived:\n  ttyd_user_map: /etc/shadow\n", "derived file /etc/shadow would overwrite a system file"),
        ("state_directory: /home/alice/.state\n", "state_directory /home/alice/.state is under home_root /home"),
        ("accounts:\n  home_root: /etc\n", "accounts.home_root /etc is a system directory"),
    ])
    func settingsThatRedirectRootsWritesAreRefused(_ yaml: String, _ fragment: String) {
        let error = #expect(throws: ValidationFailure.self) { try Settings.parse(Data(yaml.utf8), file: "ws.yaml") }
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("ws.yaml:") == true)
    }

    @Test(arguments: [
        ("authentik_user: 'x:0:0:'", "contains ':'"),
        ("authentik_user: \"carol\\u200B\"", "invisible formatting character (U+200B)"),
        ("authentik_user: \"\\u202Eevil\"", "invisible formatting character (U+202E)"),
        ("authentik_user: a, port: !!float 3800", "explicit YAML tag"),
    ])
    func identitiesThatForgeOrHideAreRefused(_ field: String, _ fragment: String) {
        let yaml = "users:\n  alice: { \(field), k8s_user: a, tier: power-user }\n"
        let error = #expect(throws: ValidationFailure.self) { try Roster.parse(Data(yaml.utf8), file: "roster.yaml") }
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
    }
}

extension HostileInputTableTests {
    @Test func aPinOnAPortSomeoneHoldsIsRefusedNotMoved() throws {
        var host = Self.base()
        host.state.ports = ["t3-serve@": ["carol": 3774]]
        host.paths["/etc/t3-serve/dispatch.json"] = PathState(
            kind: .file,
            content: Data(#"{"bob": {"os_user": "bob", "port": 3790}}"#.utf8)
        )
        let yaml =
            "users:\n  carol: { authentik_user: carol, k8s_user: carol, tier: admin }\n  kim: { authentik_user: kim, k8s_user: kim, tier: power-user, port: 3774 }\n  lee: { authentik_user: lee, k8s_user: lee, tier: power-user, port: 3790 }\n"
        let d = try diagnostics(yaml, host)
        #expect(
            d == [
                "roster.yaml:3:3: error: port 3774 pinned for t3-serve@kim is already held by carol; pick a free port (workstation never moves a working person's port)",
                "roster.yaml:4:3: error: port 3790 pinned for t3-serve@lee is already held by bob; pick a free port (workstation never moves a working person's port)",
            ]
        )
    }

    @Test func aBlankRosterFileIsNotAnEmptyRoster() throws {
        for text in ["", "\n\n", "# all commented out\n"] {
            let error = #expect(throws: ValidationFailure.self) {
                try Roster.parse(Data(text.utf8), file: "roster.yaml")
            }
            #expect(
                error?.description
                    == "roster.yaml:1:1: error: the roster is empty; write `users: {}` if you really mean nobody"
            )
        }
        #expect(try Roster.parse(Data("users: {}\n".utf8), file: "roster.yaml").entries.isEmpty)
    }
}
