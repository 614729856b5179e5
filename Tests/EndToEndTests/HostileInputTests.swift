import Foundation
import Testing
import WorkstationTestSupport

/// One hostile or malformed roster: what the operator wrote, and where and what the error must say.
struct HostileCase: CustomTestStringConvertible, Sendable {
    var name: String
    /// The roster bytes.
    var roster: Data
    /// Lines the error may be reported at (1-based); nil: only the file must be named.
    var lines: [Int]?
    /// Text the error message must contain.
    var message: String
    /// A settings file to use instead of the example one.
    var settings: String?

    var testDescription: String { name }

    /// The base roster (lines 1-4) plus `extra` lines starting at line 5.
    init(_ name: String, _ extra: String, line: Int? = 5, _ message: String, settings: String? = nil) {
        self.init(
            name,
            data: Data((HostileCase.base + extra + "\n").utf8),
            lines: line.map { [$0] },
            message,
            settings: settings
        )
    }

    init(_ name: String, data: Data, lines: [Int]?, _ message: String, settings: String? = nil) {
        self.name = name
        self.roster = data
        self.lines = lines
        self.message = message
        self.settings = settings
    }

    static let base = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }
          bob: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """

    static func entry(_ os: String, ak: String = "dave", k8s: String = "dave", more: String = "") -> String {
        "  \(os): { authentik_user: \(ak), k8s_user: \(k8s), tier: power-user\(more.isEmpty ? "" : ", " + more) }"
    }
}

/// IdP-style names that useradd or systemd mangle, as os_user or as an identity in the derived files.
let idpNameCases: [HostileCase] = [
    .init("space in os_user", HostileCase.entry("\"dave smith\""), "contains whitespace"),
    .init("@ in os_user", HostileCase.entry("dave@example.org"), "contains '@'"),
    .init("DOMAIN\\user os_user", HostileCase.entry("EXAMPLE\\dave"), "DOMAIN\\user"),
    .init("capitals in os_user", HostileCase.entry("Dave"), "upper-case"),
    .init("leading digit", HostileCase.entry("1dave"), "starts with a digit"),
    .init("all digits, plain", HostileCase.entry("1001"), "all digits"),
    .init("all digits, plain, must be quoted too", HostileCase.entry("1001"), "quote it"),
    .init("all digits, quoted", HostileCase.entry("\"1001\""), "all digits"),
    .init("leading dash", HostileCase.entry("-dave"), "starts with '-'"),
    .init("dot in os_user", HostileCase.entry("dave.smith"), "may contain only"),
    .init("non-ASCII os_user", HostileCase.entry("dåve"), "may contain only"),
    .init("trailing $ (samba machine account)", HostileCase.entry("dave$"), "may contain only"),
    .init("reserved name", HostileCase.entry("root"), "reserved"),
    .init("managed group name", HostileCase.entry("workstation"), "workstation"),
    .init("32 characters", HostileCase.entry(String(repeating: "d", count: 32)), "at most 31"),
    .init("empty os_user", HostileCase.entry("\"\""), "is empty"),
    .init("control character in os_user", HostileCase.entry("\"da\\u0001ve\""), "control character"),
    .init("= in authentik_user forges a ttyd map line", HostileCase.entry("dave", ak: "\"dave=root\""), "contains '='"),
    .init("space in authentik_user", HostileCase.entry("dave", ak: "\"dave smith\""), "whitespace"),
    .init("newline in authentik_user", HostileCase.entry("dave", ak: "\"dave\\nroot=root\""), "control character"),
    .init("comment-looking authentik_user", HostileCase.entry("dave", ak: "\"#dave\""), "starts with '#'"),
    .init("| in authentik_user", HostileCase.entry("dave", ak: "\"dave|admins\""), "'|'"),
    .init(
        "authentik_user longer than ttyd passes on",
        HostileCase.entry("dave", ak: String(repeating: "d", count: 29)),
        "at most 28"
    ),
    .init("empty k8s_user", HostileCase.entry("dave", k8s: "\"\""), "is empty"),
]

/// The same person twice, or one identity for two people.
let identityClashCases: [HostileCase] = [
    .init("os_user differing only in case", HostileCase.entry("Alice", ak: "alice2"), "when case is ignored"),
    .init("one IdP user for two os_users", HostileCase.entry("alice2", ak: "alice.smith"), "mapped to both"),
    .init("IdP users differing only in case", HostileCase.entry("alice2", ak: "Alice.Smith"), "mapped to both"),
    .init(
        "two IdP users for one os_user (key repeated)",
        HostileCase.entry("alice", ak: "alice.other"),
        line: nil,
        "duplicate key 'alice'"
    ),
    .init(
        "os_user both in the roster and a settings admin",
        "",
        line: 3,
        "declared as an admin in settings",
        settings: "admins: [{os_user: alice, authentik_user: alice.admin}]\n"
    ),
    .init(
        "settings admin's IdP user taken by a roster entry",
        "",
        line: 3,
        "is also the settings admin",
        settings: "admins: [{os_user: carl, authentik_user: alice.smith}]\n"
    ),
    .init(
        "a pinned uid twice",
        HostileCase.entry("dave", more: "uid: 1700") + "\n"
            + HostileCase.entry("frank", ak: "frank", k8s: "frank", more: "uid: 1700"),
        line: 6,
        "already pinned"
    ),
    .init(
        "a pinned port twice",
        HostileCase.entry("dave", more: "port: 3800") + "\n"
            + HostileCase.entry("frank", ak: "frank", k8s: "frank", more: "port: 3800"),
        line: 6,
        "already pinned"
    ),
    // 3 people in the base + 98 = 101 for the 100 ports of the example port_range: the 101st must not share a port.
    .init(
        "more people than ports",
        (0..<98).map {
            HostileCase.entry(
                String(format: "f%03d", $0),
                ak: String(format: "f%03d", $0),
                k8s: String(format: "f%03d", $0)
            )
        }.joined(separator: "\n"),
        line: 102,
        "no free port left for 'f097'"
    ),
]

/// Names that pass for another person's once case, width, compatibility forms and look-alike letters are folded
/// (UTS #39), one cluster identity or email for two people, a namespace listed twice, and rosters that would read as
/// "nobody" without saying so.
let lookAlikeCases: [HostileCase] = [
    .init("IdP user differing only in case", HostileCase.entry("dave", ak: "Bob"), "mapped to both 'bob'"),
    .init(
        "IdP user in full-width letters",
        HostileCase.entry("dave", ak: "\u{FF42}\u{FF4F}\u{FF42}"),
        "mapped to both 'bob'"
    ),
    .init("IdP user with a digit for a letter", HostileCase.entry("dave", ak: "a1ice.smith"), "mapped to both 'alice'"),
    .init(
        "IdP user with sharp s against ss",
        HostileCase.entry("dave", ak: "stra\u{DF}e") + "\n" + HostileCase.entry("frank", ak: "strasse", k8s: "frank"),
        line: 6,
        "mapped to both 'dave'"
    ),
    .init(
        "IdP user with a Cyrillic letter",
        HostileCase.entry("dave", ak: "\u{0430}lice.smith"),
        "mixes Latin and Cyrillic"
    ),
    .init("IdP user with a Greek letter", HostileCase.entry("dave", ak: "b\u{03BF}b"), "mixes Latin and Greek"),
    .init(
        "cluster identity all in Cyrillic look-alikes",
        HostileCase.entry("dave", k8s: "\u{044C}\u{043E}\u{044C}"),
        "mapped to both 'bob'"
    ),
    .init(
        "one k8s_user for two people",
        HostileCase.entry("dave", k8s: "alice"),
        "k8s_user 'alice' is mapped to both 'alice'"
    ),
    .init(
        "one email for two people, in other case",
        HostileCase.entry("dave", more: "email: ALICE@example.org"),
        "email 'ALICE@example.org' is mapped to both 'alice'"
    ),
    .init("os_user with a zero for an o", HostileCase.entry("b0b", ak: "dave"), "duplicates 'bob'"),
    .init(
        "os_user with rn for m",
        HostileCase.entry("carnol", ak: "dave") + "\n" + HostileCase.entry("camol", ak: "frank", k8s: "frank"),
        line: 6,
        "duplicates 'carnol'"
    ),
    .init(
        "a namespace listed twice",
        "  dave: { authentik_user: dave, k8s_user: dave, tier: namespace-owner, namespaces: [team-a, team-b, team-a] }",
        "namespace 'team-a' is listed twice"
    ),
    .init("users with no value", data: Data("users:\n".utf8), lines: nil, "users has no value"),
    .init(
        "users entirely commented out",
        data: Data("users:\n#  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n".utf8),
        lines: nil,
        "users has no value"
    ),
    .init("users: null", data: Data("users: null\n".utf8), lines: nil, "write `users: {}` if you really mean nobody"),
    .init("users: ~", data: Data("users: ~\n".utf8), lines: nil, "users has no value"),
    .init("no users key", data: Data("{}\n".utf8), lines: [1], "the roster has no users key"),
]

/// YAML 1.1 implicit typing, null look-alikes, duplicates, size, depth and encoding.
let yamlCases: [HostileCase] = {
    var cases: [HostileCase] = [
        .init("tier: no", "  dave: { authentik_user: dave, k8s_user: dave, tier: no }", "tier must be one of"),
        .init("authentik_user: no", HostileCase.entry("dave", ak: "no"), "quote it"),
        .init("authentik_user: yes", HostileCase.entry("dave", ak: "yes"), "quote it"),
        .init("k8s_user: off", HostileCase.entry("dave", k8s: "off"), "quote it"),
        .init("k8s_user: On", HostileCase.entry("dave", k8s: "On"), "quote it"),
        .init("os_user no (a boolean key)", HostileCase.entry("no", ak: "dave"), "quote it"),
        .init("os_user null (a null key)", HostileCase.entry("null", ak: "dave"), "quote it"),
        .init("k8s_user: 1001 (an integer)", HostileCase.entry("dave", k8s: "1001"), "quote it"),
        .init("k8s_user: 0700 (YAML 1.1 octal)", HostileCase.entry("dave", k8s: "0700"), "quote it"),
        .init("k8s_user: a date", HostileCase.entry("dave", k8s: "2026-01-01"), "quote it"),
        .init("k8s_user: .inf", HostileCase.entry("dave", k8s: ".inf"), "quote it"),
        .init(
            "namespace: off",
            "  dave: { authentik_user: dave, k8s_user: dave, tier: namespace-owner, namespaces: [off] }",
            "quote it"
        ),
        .init("group: yes", HostileCase.entry("dave", more: "groups: [yes]"), "quote it"),
        .init(
            "namespaces: no (not a list)",
            "  dave: { authentik_user: dave, k8s_user: dave, tier: namespace-owner, namespaces: no }",
            "must be a list"
        ),
        .init("uid 01001 (octal-looking)", HostileCase.entry("dave", more: "uid: 01001"), "leading zero"),
        .init("port 03774 (octal-looking)", HostileCase.entry("dave", more: "port: 03774"), "leading zero"),
        .init("uid 0o1751", HostileCase.entry("dave", more: "uid: 0o1751"), "whole number"),
        .init("uid 0x3e9", HostileCase.entry("dave", more: "uid: 0x3e9"), "whole number"),
        .init("uid 1_001", HostileCase.entry("dave", more: "uid: 1_001"), "whole number"),
        .init("uid 1e3", HostileCase.entry("dave", more: "uid: 1e3"), "whole number"),
        .init("uid -1", HostileCase.entry("dave", more: "uid: -1"), "whole number"),
        .init("uid 0 (root)", HostileCase.entry("dave", more: "uid: 0"), "between 1000"),
        .init("uid: yes", HostileCase.entry("dave", more: "uid: yes"), "whole number"),
        .init("empty authentik_user string", HostileCase.entry("dave", ak: "\"\""), "is empty"),
        .init("\"null\" authentik_user string", HostileCase.entry("dave", ak: "\"null\""), "missing value"),
        .init("\"None\" k8s_user string", HostileCase.entry("dave", k8s: "\"None\""), "missing value"),
        .init("authentik_user: null", HostileCase.entry("dave", ak: "null"), "no value"),
        .init("authentik_user: ~", HostileCase.entry("dave", ak: "~"), "no value"),
        .init(
            "authentik_user left empty",
            "  dave: { authentik_user: , k8s_user: dave, tier: power-user }",
            "no value"
        ),
        .init("empty email", HostileCase.entry("dave", more: "email: \"\""), "not an address"),
        .init(
            "duplicate key inside an entry",
            "  dave: { authentik_user: dave, authentik_user: erin, k8s_user: dave, tier: power-user }",
            "duplicate key 'authentik_user'"
        ),
        .init(
            "duplicate key in a nested mapping",
            HostileCase.entry("dave", more: "memory: { high: 1G, high: 2G, max: 4G, swap_max: 0 }"),
            "duplicate key 'high'"
        ),
        .init(
            "duplicate top-level key",
            "users:\n  dave: { authentik_user: dave, k8s_user: dave, tier: power-user }",
            line: nil,
            "duplicate key 'users'"
        ),
        .init("unknown key (typo)", HostileCase.entry("dave", more: "teir: admin"), "did you mean"),
        .init("users is a list", data: Data("users: [alice, bob]\n".utf8), lines: [1], "must be a mapping"),
        .init("document is a list", data: Data("- alice\n- bob\n".utf8), lines: [1], "must be a mapping"),
        .init("tab indentation", "\tdave: { authentik_user: dave, k8s_user: dave, tier: power-user }", "tab"),
        .init("tab inside a quoted value", HostileCase.entry("dave", ak: "\"da\\tve\""), "control character"),
        .init("NUL byte", HostileCase.entry("dave", ak: "da\u{0}ve"), "control character"),
        .init(
            "byte-order mark",
            data: Data([0xEF, 0xBB, 0xBF]) + Data(HostileCase.base.utf8),
            lines: [1],
            "byte-order mark"
        ),
        .init(
            "invalid UTF-8",
            data: Data(HostileCase.base.utf8) + Data("  d".utf8) + Data([0xC3, 0x28])
                + Data("ve: { authentik_user: dave }\n".utf8),
            lines: [5],
            "not valid UTF-8"
        ),
        .init(
            "truncated UTF-8 at the end",
            data: Data(HostileCase.base.utf8) + Data([0xE2, 0x82]),
            lines: [5],
            "not valid UTF-8"
        ),
        .init("unterminated flow mapping", "  dave: { authentik_user: dave, k8s_user: dave", line: nil, "invalid YAML"),
        .init("undefined alias", HostileCase.entry("dave", more: "groups: *nothing"), line: nil, "invalid YAML"),
    ]
    let deepFlow = "users: " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\n"
    cases.append(.init("very deep flow nesting", data: Data(deepFlow.utf8), lines: [1], "nesting deeper"))
    let deepBlock = "users:\n  dave:\n    " + String(repeating: "- ", count: 200_000) + "x\n"
    cases.append(.init("very deep block nesting on one line", data: Data(deepBlock.utf8), lines: [3], "nesting deeper"))
    var deepIndent = "users:\n  dave:\n"
    for i in 0..<300 { deepIndent += String(repeating: " ", count: 4 + i) + "k\(i):\n" }
    cases.append(.init("very deep indented mappings", data: Data(deepIndent.utf8), lines: nil, "deeper"))
    var large = HostileCase.base
    while large.utf8.count < 5 << 20 { large += "  # " + String(repeating: "x", count: 1000) + "\n" }
    cases.append(.init("very large document", data: Data(large.utf8), lines: nil, "over the limit"))
    // "Billion laughs": each alias level multiplies the values; nine levels of nine are 387 million names.
    var laughs = "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in 1...9 {
        laughs += "x\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n"
    }
    cases.append(
        .init(
            "alias expansion bomb",
            data: Data(
                ("anchors:\n" + laughs.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
                    + HostileCase.base
                    + "  dave: { authentik_user: dave, k8s_user: dave, tier: power-user, groups: *a9 }\n").utf8
            ),
            lines: nil,
            "alias"
        )
    )
    return cases
}()

/// Host state the roster collides with (set up in the shared root: erin holds uid 1500, svc is a system account).
let hostStateCases: [HostileCase] = [
    .init(
        "a pinned uid another account holds",
        HostileCase.entry("dave", more: "uid: 1500"),
        "already used by account 'erin'"
    ),
    .init(
        "a pin that would renumber an existing account",
        "  erin: { authentik_user: erin, k8s_user: erin, tier: power-user, uid: 1600 }",
        "never renumbers"
    ),
    .init("a system account as os_user", HostileCase.entry("svc", ak: "svc"), "system account"),
]

/// Every hostile input ends in a located error, exit 1, and a root that is byte-for-byte what it was.
@Suite(.serialized) struct HostileInputTests {
    /// One converged root shared by every case (each must leave it unchanged, so sharing it also checks that).
    final class SharedRoot: @unchecked Sendable {
        let root: TempRoot
        let inputs: TempRoot
        init() throws {
            root = try TempRoot()
            inputs = try TempRoot()
            try inputs.write("/base.yaml", HostileCase.base)
            let r = try CLI.run([
                "apply", "--roster", inputs.file("/base.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
                "--init-root",
            ])
            guard r.status == 0 else { throw SetupError(message: r.stderr) }
            // A hand-made account holding uid 1500, and a system account, both unknown to workstation.
            for args in [["-u", "1500", "-m", "erin"], ["-r", "-u", "999", "svc"]] {
                let r = try TestProcess.accountTool("useradd", prefix: root.path, args)
                guard r.status == 0 else { throw SetupError(message: "useradd \(args) failed: \(r.stderr)") }
            }
        }
    }
    struct SetupError: Error { var message: String }

    static let shared = Result { try SharedRoot() }

    func check(_ c: HostileCase) throws {
        let shared = try Self.shared.get()
        let file = "/case-\(UUID().uuidString.prefix(8)).yaml"
        let rosterPath = shared.inputs.file(file)
        try FileManager.default.createDirectory(atPath: shared.inputs.path, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: rosterPath, contents: c.roster)
        var args = ["--roster", rosterPath, "--root", shared.root.path]
        if let settings = c.settings {
            try shared.inputs.write("/settings-\(file.dropFirst())", settings)
            args += ["--settings", shared.inputs.file("/settings-\(file.dropFirst())")]
        } else {
            args += ["--settings", Fixture.settingsPath]
        }
        let before = TreeSnapshot(shared.root.path)
        for command in ["apply", "plan", "validate"] {
            let r = try CLI.run([command] + args)
            #expect(r.status == 1, "\(c.name): \(command) exited \(r.status)\nstdout: \(r.stdout)\nstderr: \(r.stderr)")
            let errorLines = r.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
            let located = errorLines.filter { line in
                guard
                    line.hasPrefix(rosterPath + ":")
                        || line.hasPrefix((c.settings != nil ? shared.inputs.path : rosterPath))
                else { return false }
                guard let lines = c.lines else { return true }
                return lines.contains { line.hasPrefix("\(rosterPath):\($0):") }
            }
            #expect(
                located.contains { $0.contains(c.message) },
                "\(c.name): \(command) must report '\(c.message)' at \(rosterPath):\(c.lines.map { "\($0)" } ?? "any line"); stderr:\n\(r.stderr.prefix(2000))"
            )
            if command != "validate" {
                #expect(r.stderr.contains("nothing was changed"), "\(c.name): \(r.stderr.prefix(500))")
            }
            #expect(
                r.stdout.isEmpty || command == "validate",
                "\(c.name): \(command) printed a plan: \(r.stdout.prefix(500))"
            )
        }
        let after = TreeSnapshot(shared.root.path)
        #expect(
            before == after,
            "\(c.name): the root changed:\n\(before.differences(to: after).prefix(20).joined(separator: "\n"))"
        )
        try? FileManager.default.removeItem(atPath: rosterPath)
    }

    @Test(arguments: idpNameCases) func idpStyleNames(_ c: HostileCase) throws { try check(c) }
    @Test(arguments: identityClashCases) func identityClashes(_ c: HostileCase) throws { try check(c) }
    @Test(arguments: lookAlikeCases) func lookAlikeNamesSharedIdentitiesAndEmptyRosters(_ c: HostileCase) throws {
        try check(c)
    }
    @Test(arguments: yamlCases) func yamlTypingDuplicatesAndEncoding(_ c: HostileCase) throws { try check(c) }
    @Test(arguments: hostStateCases) func collisionsWithHostState(_ c: HostileCase) throws { try check(c) }

    /// The cases above must each be a one-problem edit of a roster that is itself valid against this root.
    @Test func baseRosterIsValidAndConverged() throws {
        let shared = try Self.shared.get()
        let r = try CLI.run([
            "plan", "--roster", shared.inputs.file("/base.yaml"), "--settings", Fixture.settingsPath,
            "--root", shared.root.path, "--detailed-exitcode",
        ])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
    }
}
