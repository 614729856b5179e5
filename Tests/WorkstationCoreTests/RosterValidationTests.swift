import Foundation
import Testing

@testable import WorkstationCore

/// Every validation rule of the roster, each as (roster text, expected line, expected message fragment).
@Suite struct RosterValidationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var yaml: String
        var line: Int
        var fragment: String
        var testDescription: String { name }
    }

    static func entry(_ os: String, _ rest: String = "authentik_user: a1, k8s_user: a1, tier: power-user") -> String {
        "users:\n  \(os): { \(rest) }\n"
    }

    static let cases: [Case] = [
        Case(
            name: "unknown key (typo)",
            yaml: "users:\n  alice:\n    authentik_user: a\n    k8s_user: a\n    teir: power-user\n",
            line: 5,
            fragment: "unknown key 'teir' in entry 'alice'; did you mean 'tier'?"
        ),
        Case(
            name: "unknown top-level key",
            yaml: "user:\n  alice: {}\n",
            line: 1,
            fragment: "unknown key 'user' in the roster; did you mean 'users'?"
        ),
        Case(
            name: "bad tier",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: owner"),
            line: 2,
            fragment: "tier must be one of admin, power-user, namespace-owner, got 'owner'"
        ),
        Case(
            name: "missing tier",
            yaml: entry("alice", "authentik_user: a, k8s_user: a"),
            line: 2,
            fragment: "missing required key 'tier'"
        ),
        Case(name: "upper case", yaml: entry("Alice"), line: 2, fragment: "contains upper-case letters"),
        Case(
            name: "space",
            yaml: "users:\n  \"al ice\": { authentik_user: a, k8s_user: a, tier: power-user }\n",
            line: 2,
            fragment: "contains whitespace"
        ),
        Case(name: "at sign", yaml: entry("alice@example.org"), line: 2, fragment: "contains '@'"),
        Case(
            name: "backslash",
            yaml: "users:\n  'CORP\\alice': { authentik_user: a, k8s_user: a, tier: power-user }\n",
            line: 2,
            fragment: "DOMAIN\\user"
        ),
        Case(name: "leading digit", yaml: entry("1alice"), line: 2, fragment: "starts with a digit"),
        Case(name: "all digits", yaml: entry("1001"), line: 2, fragment: "all digits"),
        Case(name: "too long", yaml: entry(String(repeating: "a", count: 33)), line: 2, fragment: "at most 31"),
        Case(name: "reserved root", yaml: entry("root"), line: 2, fragment: "reserved system name"),
        Case(name: "reserved nobody", yaml: entry("nobody"), line: 2, fragment: "reserved system name"),
        Case(
            name: "duplicate key",
            yaml:
                "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user }\n  alice: { authentik_user: b, k8s_user: b, tier: power-user }\n",
            line: 2,
            fragment: "duplicate key 'alice'"
        ),
        Case(
            name: "duplicate key inside an entry",
            yaml:
                "users:\n  alice:\n    authentik_user: a\n    authentik_user: b\n    k8s_user: a\n    tier: power-user\n",
            line: 3,
            fragment: "duplicate key 'authentik_user'"
        ),
        Case(
            name: "authentik_user duplicated after case folding",
            yaml:
                "users:\n  alice: { authentik_user: Alice, k8s_user: a, tier: power-user }\n  bob: { authentik_user: alice, k8s_user: b, tier: power-user }\n",
            line: 3,
            fragment: "is mapped to both 'alice' (line 2) and 'bob'"
        ),
        Case(
            name: "newline in authentik_user",
            yaml: "users:\n  alice: { authentik_user: \"a\\nb=root\", k8s_user: a, tier: power-user }\n",
            line: 2,
            fragment: "authentik_user 'a\\u{a}b=root' of 'alice' contains a control character"
        ),
        Case(
            name: "equals in authentik_user",
            yaml: entry("alice", "authentik_user: a=root, k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "contains '='"
        ),
        Case(
            name: "space in authentik_user",
            yaml: entry("alice", "authentik_user: 'a b', k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "contains whitespace"
        ),
        Case(
            name: "tab in file",
            yaml: "users:\n  alice: { authentik_user: a,\tk8s_user: a, tier: power-user }\n",
            line: 2,
            fragment: "control character"
        ),
        Case(
            name: "pinned uid twice",
            yaml:
                "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user, uid: 1500 }\n  bob: { authentik_user: b, k8s_user: b, tier: power-user, uid: 1500 }\n",
            line: 3,
            fragment: "uid 1500 of 'bob' is already pinned for 'alice'"
        ),
        Case(
            name: "octal-looking uid",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, uid: 01001"),
            line: 2,
            fragment: "leading zero"
        ),
        Case(
            name: "uid not a number",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, uid: no"),
            line: 2,
            fragment: "uid must be a whole number, got 'no'"
        ),
        Case(
            name: "system uid",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, uid: 0"),
            line: 2,
            fragment: "uid must be between 1000 and 59999"
        ),
        Case(
            name: "namespace-owner without namespaces",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: namespace-owner"),
            line: 2,
            fragment: "needs a non-empty namespaces list"
        ),
        Case(
            name: "namespace-owner with empty namespaces",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: namespace-owner, namespaces: []"),
            line: 2,
            fragment: "needs a non-empty namespaces list"
        ),
        Case(
            name: "namespaces on a power-user",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, namespaces: [x]"),
            line: 2,
            fragment: "only a namespace-owner owns namespaces"
        ),
        Case(
            name: "invalid namespace",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: namespace-owner, namespaces: [Team_A]"),
            line: 2,
            fragment: "namespace 'Team_A' is not a DNS-1123 label"
        ),
        Case(
            name: "namespace too long",
            yaml: entry(
                "alice",
                "authentik_user: a, k8s_user: a, tier: namespace-owner, namespaces: [\(String(repeating: "n", count: 64))]"
            ),
            line: 2,
            fragment: "is not a DNS-1123 label"
        ),
        Case(
            name: "sudo for a non-admin",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, groups: [sudo]"),
            line: 2,
            fragment: "may not be in group 'sudo'"
        ),
        Case(
            name: "docker for a non-admin",
            yaml: entry(
                "alice",
                "authentik_user: a, k8s_user: a, tier: namespace-owner, namespaces: [x], groups: [docker]"
            ),
            line: 2,
            fragment: "may not be in group 'docker'"
        ),
        Case(
            name: "null authentik_user",
            yaml: entry("alice", "authentik_user: ~, k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "authentik_user in entry 'alice' has no value"
        ),
        Case(
            name: "empty quoted authentik_user",
            yaml: entry("alice", "authentik_user: '', k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "authentik_user '' of 'alice' is empty"
        ),
        Case(
            name: "authentik_user longer than ttyd passes on",
            yaml: entry("alice", "authentik_user: \(String(repeating: "x", count: 29)), k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "29 characters; at most 28"
        ),
        Case(
            name: "list where a string belongs",
            yaml: entry("alice", "authentik_user: [a], k8s_user: a, tier: power-user"),
            line: 2,
            fragment: "authentik_user must be a single value"
        ),
        Case(name: "byte-order mark", yaml: "\u{FEFF}users: {}\n", line: 1, fragment: "byte-order mark"),
        Case(name: "syntax error", yaml: "users:\n  alice: { authentik_user: a\n", line: 3, fragment: "invalid YAML"),
        Case(
            name: "port out of range",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, port: 80"),
            line: 2,
            fragment: "port must be between 1024 and 65535"
        ),
        Case(
            name: "bad email",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: power-user, email: alice"),
            line: 2,
            fragment: "is not an address"
        ),
        Case(name: "users not a mapping", yaml: "users: [alice]\n", line: 1, fragment: "users must be a mapping"),
        Case(name: "users with no value", yaml: "users:\n", line: 1, fragment: "users has no value"),
        Case(
            name: "users entirely commented out",
            yaml: "# the team\nusers:\n  # alice: { authentik_user: a, k8s_user: a, tier: power-user }\n",
            line: 2,
            fragment: "users has no value"
        ),
        Case(
            name: "users: null",
            yaml: "users: null\n",
            line: 1,
            fragment: "write `users: {}` if you really mean nobody"
        ),
        Case(name: "no users key", yaml: "{}\n", line: 1, fragment: "the roster has no users key"),
        Case(
            name: "k8s_user shared, block style",
            yaml:
                "users:\n  alice: { authentik_user: a, k8s_user: kim, tier: power-user }\n  bob:\n    authentik_user: b\n    k8s_user: KIM\n    tier: power-user\n",
            line: 5,
            fragment: "k8s_user 'KIM' is mapped to both 'alice' (line 2) and 'bob'"
        ),
        Case(
            name: "email shared",
            yaml:
                "users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user, email: x@example.org }\n  bob: { authentik_user: b, k8s_user: b, tier: power-user, email: X@Example.org }\n",
            line: 3,
            fragment: "email 'X@Example.org' is mapped to both 'alice'"
        ),
        Case(
            name: "authentik_user in full width",
            yaml:
                "users:\n  alice: { authentik_user: kim, k8s_user: a, tier: power-user }\n  bob: { authentik_user: \"\\uFF4Bim\", k8s_user: b, tier: power-user }\n",
            line: 3,
            fragment: "passes for their 'kim'"
        ),
        Case(
            name: "namespace repeated",
            yaml: entry("alice", "authentik_user: a, k8s_user: a, tier: namespace-owner, namespaces: [x, y, x]"),
            line: 2,
            fragment: "namespace 'x' is listed twice for 'alice'"
        ),
    ]

    @Test(arguments: cases)
    func reportsLocatedError(_ c: Case) throws {
        let error = try #require(throws: ValidationFailure.self) {
            try Roster.parse(Data(c.yaml.utf8), file: "roster.yaml")
        }
        let match = error.diagnostics.first { $0.message.contains(c.fragment) }
        #expect(match != nil, "expected '\(c.fragment)' in:\n\(error)")
        #expect(match?.location.line == c.line, "wrong line in:\n\(error)")
        #expect(match?.location.file == "roster.yaml")
        #expect(error.description.contains("roster.yaml:\(c.line):"))
    }

    /// A misspelled required key is one error, the unknown key with the right name, not also "missing 'tier'".
    @Test(arguments: [("teir", "tier"), ("k8s_usr", "k8s_user")])
    func aMisspelledRequiredKeyIsReportedOnce(_ typo: String, _ key: String) throws {
        let fields = ["authentik_user: a", "k8s_user: a", "tier: power-user"].map {
            $0.hasPrefix(key + ":") ? typo + $0.dropFirst(key.count) : Substring($0)
        }
        let yaml = "users:\n  alice: { \(fields.joined(separator: ", ")) }\n"
        let error = try #require(throws: ValidationFailure.self) { try Roster.parse(Data(yaml.utf8), file: "r.yaml") }
        #expect(error.diagnostics.map(\.message) == ["unknown key '\(typo)' in entry 'alice'; did you mean '\(key)'?"])
    }

    @Test func reportsEveryProblemAtOnce() throws {
        let yaml = """
            users:
              Alice: { authentik_user: a, k8s_user: a, tier: power-user }
              bob: { authentik_user: b, k8s_user: b, tier: boss }
              carol: { authentik_user: c, k8s_user: c, tier: namespace-owner }
            """
        let error = try #require(throws: ValidationFailure.self) { try Roster.parse(Data(yaml.utf8), file: "r.yaml") }
        #expect(error.diagnostics.map(\.location.line) == [2, 3, 4])
    }

    /// Quoted, `no`, `off`, `0700` stay the strings they look like; written bare, a YAML 1.1 reader would take them
    /// as a boolean or a number, so they are refused with the fix rather than read either way.
    @Test func anIncompleteEntryStillHasItsNameChecked() throws {
        let yaml = "users:\n  Eve: { authentik_user: eve, k8s_user: eve, tier: poweruser }\n"
        let error = try #require(throws: ValidationFailure.self) { try Roster.parse(Data(yaml.utf8), file: "r.yaml") }
        #expect(error.diagnostics.map(\.message).contains { $0.hasPrefix("tier must be one of") })
        #expect(error.diagnostics.map(\.message).contains { $0.hasPrefix("os_user 'Eve' contains upper-case letters") })
    }

    @Test func implicitTypingNeverChangesMeaning() throws {
        let yaml =
            "users:\n  'no': { authentik_user: 'off', k8s_user: \"yes\", tier: power-user, groups: ['on'], flags: ['0700', 'null'] }\n"
        let roster = try Roster.parse(Data(yaml.utf8), file: "r.yaml")
        let e = try #require(roster.entries.first)
        #expect(e.osUser == "no")
        #expect(e.authentikUser == "off")
        #expect(e.k8sUser == "yes")
        #expect(e.groups == ["on"])
        #expect(e.flags == ["0700", "null"])
        let bare = "users:\n  no: { authentik_user: off, k8s_user: a, tier: power-user }\n"
        let error = try #require(throws: ValidationFailure.self) { try Roster.parse(Data(bare.utf8), file: "r.yaml") }
        #expect(
            error.description.contains(
                "r.yaml:2:3: error: os_user 'no' is written bare, which YAML 1.1 readers take as a boolean; quote it (\"no\")"
            )
        )
    }

    @Test func acceptsTheSpecShapeWithFlowMappingsAndComments() throws {
        let yaml = """
            # roster.yaml — THE source of truth
            users:
              alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
              # alice is new to the cluster
              bob: { authentik_user: bob98, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }
              # already a namespace-owner; preserve team-bob
              # dave: { authentik_user: dave81, k8s_user: dave81, tier: namespace-owner, namespaces: [dave81] }
            # carol (admin) is the base author; not provisioned as a child.
            """
        let roster = try Roster.parse(Data(yaml.utf8), file: "r.yaml")
        #expect(roster.entries.map(\.osUser) == ["alice", "bob"])
        #expect(roster["bob"]?.namespaces == ["team-bob"])
    }

    @Test func settingsAdminConflictingWithRosterTier() throws {
        var settings = Settings()
        settings.admins = [AdminDeclaration(osUser: "alice", authentikUser: "alice")]
        let yaml = "users:\n  alice: { authentik_user: alice, k8s_user: a, tier: power-user }\n"
        let error = try #require(throws: ValidationFailure.self) {
            try Roster.parse(Data(yaml.utf8), file: "r.yaml", settings: settings)
        }
        #expect(error.description.contains("declared as an admin in settings"))
    }

    @Test func settingsReportUnknownKeysAndBadValues() throws {
        let yaml = "config_bsae: /x\nunits:\n  - template: t3-serve\n    port_range: [10, 20]\nlock_timeout: soon\n"
        let error = try #require(throws: ValidationFailure.self) {
            try Settings.parse(Data(yaml.utf8), file: "ws.yaml")
        }
        let text = error.description
        #expect(text.contains("ws.yaml:1:1: error: unknown key 'config_bsae' in settings; did you mean 'config_base'?"))
        #expect(text.contains("ws.yaml:3:5: error: template 't3-serve' must be a unit name ending in '@'"))
        #expect(text.contains("port_range must be [low, high]"))
        #expect(text.contains("ws.yaml:5:15: error: lock_timeout must be a whole number"))
    }
}
