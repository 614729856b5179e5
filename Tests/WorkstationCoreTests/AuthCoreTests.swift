import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationCore

/// The pure parts of the auth items: the `~/.claude.json` edit, secret content from bytes, the Claude login
/// choice, the settings that refuse, and the default tool manifest.
@Suite struct AuthCoreTests {
    func canonical(_ o: [String: Any]) -> Data? {
        try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
    }

    static let entry = #"{"type": "stdio", "command": "npx", "args": ["@playwright/mcp@latest"], "env": {}}"#

    /// Removing the inserted text gives back the original bytes: nothing else in the file moved.
    @Test(arguments: [
        "{}",
        "{ }\n",
        #"{"mcpServers": {}}"#,
        "{\n  \"mcpServers\": {\n    \"ha\": {\"url\": \"x\"}\n  },\n  \"numStartups\": 3\n}\n",
        #"{"a": "}{\"mcpServers\": {", "b": [1, [2, {"c": "]"}]], "mcpServers": {"x": {"y": "\\"}}}"#,
        #"{"mcp\u0053ervers": {"z": 1}, "k": null}"#,
        #"{"projects": {"/home/alice/code": {"mcpServers": {"playwright": {}}}}, "n": -1.5e3, "t": true}"#,
    ])
    func insertionKeepsEveryOtherByte(_ original: String) throws {
        guard case .write(let out) = ClaudeJSON.addMCPServer(Data(original.utf8), name: "playwright", entry: Self.entry)
        else {
            Issue.record("expected an edit for \(original)")
            return
        }
        let obj = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        let before = try #require(try JSONSerialization.jsonObject(with: Data(original.utf8)) as? [String: Any])
        let servers = try #require(obj["mcpServers"] as? [String: Any])
        #expect((servers["playwright"] as? [String: Any])?["command"] as? String == "npx")
        #expect(canonical(obj.filter { $0.key != "mcpServers" }) == canonical(before.filter { $0.key != "mcpServers" }))
        let kept = (before["mcpServers"] as? [String: Any]) ?? [:]
        #expect(canonical(servers.filter { $0.key != "playwright" }) == canonical(kept))
        // The original is the output with one contiguous run removed.
        let a = [UInt8](original.utf8)
        let b = [UInt8](out)
        let head = zip(a, b).prefix { $0 == $1 }.count
        let tail = zip(a.reversed(), b.reversed()).prefix { $0 == $1 }.count
        #expect(head + tail >= a.count, "only an insertion: \(String(decoding: out, as: UTF8.self))")
    }

    @Test(arguments: [
        (#"{"mcpServers": {"playwright": {"command": "mine"}}}"#, ClaudeJSON.Edit.present),
        ("{not json", .refused("it is not a JSON object")),
        (#"["a"]"#, .refused("it is not a JSON object")),
        ("\"x\"", .refused("it is not a JSON object")),
        (#"{"mcpServers": [1]}"#, .refused("its mcpServers is not an object")),
        (#"{"mcpServers": {"a": 1}, "mcpServers": {"b": 2}}"#, .refused("it names mcpServers twice")),
    ])
    func filesThatAreNotEditedAreLeftAlone(_ original: String, _ expected: ClaudeJSON.Edit) {
        #expect(ClaudeJSON.addMCPServer(Data(original.utf8), name: "playwright", entry: Self.entry) == expected)
    }

    @Test func aMissingFileGetsOnlyTheEntry() throws {
        guard case .write(let out) = ClaudeJSON.addMCPServer(nil, name: "playwright", entry: Self.entry) else {
            Issue.record("no file made")
            return
        }
        let obj = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        #expect(obj.keys.sorted() == ["mcpServers"])
        #expect((obj["mcpServers"] as? [String: Any])?.keys.sorted() == ["playwright"])
    }

    /// Content is made from bytes: base64 decoded exactly; `{{value_shell}}` quotes any byte but NUL.
    @Test(arguments: [
        (
            SecretEncoding.base64, nil as String?, Data([0, 0xFF, 0x0A, 0x27]).base64EncodedString(),
            Result<Data, SecretContentError>.success(Data([0, 0xFF, 0x0A, 0x27]))
        ),
        (.base64, nil, " \(Data([1, 2, 3]).base64EncodedString())\n", .success(Data([1, 2, 3]))),
        (.base64, nil, "no base64!", .failure(.notBase64)),
        (.base64, "export X={{value_shell}}", Data([0x61, 0]).base64EncodedString(), .failure(.nulInShell)),
        (
            .base64, "export X={{value_shell}}", Data([0x61, 0x27, 0xFF]).base64EncodedString(),
            .success(
                Data([
                    0x65, 0x78, 0x70, 0x6F, 0x72, 0x74, 0x20, 0x58, 0x3D, 0x27, 0x61, 0x27, 0x5C, 0x27, 0x27, 0xFF,
                    0x27, 0x0A,
                ])
            )
        ),
        (.base64, "{{value_json}}", Data([0xFF]).base64EncodedString(), .failure(.notUTF8)),
        (.none, "t={{value}}", "v", .success(Data("t=v\n".utf8))),
        (.none, nil, "a\nb", .success(Data("a\nb".utf8))),
    ])
    func secretContentFromBytes(
        _ enc: SecretEncoding,
        _ template: String?,
        _ value: String,
        _ expected: Result<Data, SecretContentError>
    ) {
        var spec = SecretFileSpec(name: "x", path: "p", key: "k", target: ".config/x")
        spec.encoding = enc
        spec.template = template
        let got = Planner.secretContent(spec, Redacted(Data(value.utf8))).map(\.bytes)
        #expect(got == expected)
    }

    /// The roster's `claude_login` wins over the tier, the tier over the default.
    @Test(arguments: [
        (ClaudeLogin.ownLogin, [Tier: ClaudeLogin](), nil as ClaudeLogin?, ClaudeLogin.ownLogin),
        (.ownLogin, [.powerUser: .shared], nil, .shared),
        (.ownLogin, [.powerUser: .shared], .ownLogin, .ownLogin),
        (.shared, [:], nil, .shared),
        (.shared, [.powerUser: .ownLogin], nil, .ownLogin),
        (.ownLogin, [.namespaceOwner: .shared], .shared, .shared),
    ])
    func claudeLoginChoice(
        _ def: ClaudeLogin,
        _ tiers: [Tier: ClaudeLogin],
        _ person: ClaudeLogin?,
        _ expected: ClaudeLogin
    ) {
        var c = ClaudeAuthSettings()
        c.defaultLogin = def
        c.tiers = tiers
        var e = RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser)
        e.claudeLogin = person
        #expect(c.login(for: e) == expected)
    }

    /// Refused settings: located, with the fix.
    @Test(arguments: [
        ("auth:\n  claude: {default: shared, token: {path: c, key: k}}\n", "w.yaml:2:3: error: auth secrets"),
        (
            "vault: {url: 'https://v.example.org'}\nauth:\n  claude: {tiers: {admin: shared}}\n",
            "w.yaml:3:20: error: unknown key 'admin'"
        ),
        (
            "vault: {url: 'https://v.example.org'}\nauth:\n  beads: {path: '../x', key: k}\n",
            "w.yaml:3:17: error: auth.beads.path '../x'"
        ),
        (
            "vault: {url: 'https://v.example.org'}\nauth:\n  beads: {path: d, key: k, variable: 'lower'}\n",
            "must be an environment variable name"
        ),
        ("vault: {url: 'https://v.example.org'}\nauth:\n  profile_snippet: /etc/profile.d/x\n", "must end in .sh"),
        (
            "vault: {url: 'https://v.example.org'}\nkubernetes: {server: 'https://k.example.org', token_file: .kube/t}\n",
            "auth: service-account-token only"
        ),
        (
            "vault: {url: 'https://v.example.org'}\nkubernetes: {auth: service-account-token, service_account_token: {path: 'k/{os_user}', key: t}}\n",
            "needs server"
        ),
        (
            "kubernetes: {server: 'https://k.example.org', auth: service-account-token, service_account_token: {path: 'k/{os_user}', key: t}}\n",
            "are read from Vault"
        ),
        (
            "vault: {url: 'https://v.example.org'}\nkubernetes: {server: 'https://k.example.org', auth: kerberos}\n",
            "must be oidc"
        ),
        (
            "vault:\n  url: 'https://v.example.org'\n  secret_files: [{name: auth-claude, path: p, key: k, target: .x}]\n",
            "reserved for auth"
        ),
    ])
    func badAuthSettingsAreLocated(_ yaml: String, _ message: String) {
        #expect(throws: ValidationFailure.self) { try Settings.parse(Data(yaml.utf8), file: "w.yaml") }
        do { _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml") } catch {
            #expect("\(error)".contains(message), "\(error)")
            #expect("\(error)".contains("w.yaml:"))
        }
    }

    @Test func rosterClaudeLoginIsLocated() throws {
        let bad = "users:\n  alice: {authentik_user: a, k8s_user: a, tier: power-user, claude_login: borrowed}\n"
        do {
            _ = try Roster.parse(Data(bad.utf8), file: "r.yaml")
            Issue.record("must be refused")
        } catch {
            #expect("\(error)".contains("r.yaml:2:"), "\(error)")
            #expect("\(error)".contains("claude_login must be own-login or shared"))
        }
        let admin = "users:\n  carol: {authentik_user: c, k8s_user: c, tier: admin, claude_login: shared}\n"
        #expect(throws: ValidationFailure.self) { try Roster.parse(Data(admin.utf8), file: "r.yaml") }
        let shared = "users:\n  alice: {authentik_user: a, k8s_user: a, tier: power-user, claude_login: shared}\n"
        do {
            _ = try Roster.parse(Data(shared.utf8), file: "r.yaml")
            Issue.record("shared without a token in the settings must be refused")
        } catch {
            #expect(
                "\(error)".contains("r.yaml:2:75: error: claude_login: shared for 'alice' needs the org's token"),
                "\(error)"
            )
        }
        let settings = try Settings.parse(
            Data("vault: {url: 'https://v.example.org'}\nauth:\n  claude: {token: {path: c, key: k}}\n".utf8),
            file: "w.yaml"
        )
        let ok = try Roster.parse(Data(shared.utf8), file: "r.yaml", settings: settings)
        #expect(ok.entries.first?.claudeLogin == .shared)
    }

    /// The default tool manifest installs from Debian 12's main archive: kubectl (only in the Kubernetes apt
    /// repository) is not in it. Where this machine's apt lists are Debian 12's, each default has a candidate.
    @Test func defaultToolManifestInstallsOnDebian12() throws {
        let packages = Settings().setupHost.packages
        #expect(!packages.contains("kubectl") && !packages.contains("kubernetes-client"))
        #expect(packages == ["acl", "git", "git-crypt"])
        let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        guard release.contains("VERSION_CODENAME=bookworm"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-cache")
        else { return }
        let out = try TestProcess.run("/usr/bin/apt-cache", ["policy"] + packages).stdout
        for name in packages {
            let section =
                out.components(separatedBy: "\n\(name):").dropFirst().first ?? out.components(separatedBy: "\(name):")
                .dropFirst().first ?? ""
            #expect(
                section.contains("Candidate:") && !section.prefix(200).contains("Candidate: (none)"),
                "\(name): \(section.prefix(200))"
            )
        }
    }
}
