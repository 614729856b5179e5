import Foundation
import Testing

@testable import WorkstationCore

/// The `auth:` settings and the roster's `claude_login`: who gets the shared Claude token, and settings that are
/// refused at their line with the fix.
@Suite struct AuthSettingsTests {
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
}
