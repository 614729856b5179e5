import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport
import Yams

@Suite struct RenderTests {
    let roster = try! Roster.parse(Data(Sandbox.defaultRoster.utf8), file: "roster.yaml")

    func documents() throws -> [[String: Any]] {
        let text = try KubernetesManifests.rbac(roster: roster, settings: KubernetesSettings())
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    @Test func noRuleGrantsSecretsWildcardsExecOrWrites() throws {
        let docs = try documents()
        let roles = docs.filter {
            ($0["kind"] as? String)?.hasSuffix("Role") == true && ($0["kind"] as? String) != "RoleBinding"
        }
        #expect(roles.count == 2)
        var rules = 0
        for role in roles {
            for rule in role["rules"] as? [[String: Any]] ?? [] {
                rules += 1
                let resources = rule["resources"] as? [String] ?? []
                let verbs = rule["verbs"] as? [String] ?? []
                let groups = rule["apiGroups"] as? [String] ?? []
                #expect(!resources.contains { $0 == "secrets" || $0.hasPrefix("secrets/") })
                #expect(!resources.contains("*") && !verbs.contains("*") && !groups.contains("*"))
                #expect(
                    !resources.contains {
                        ["pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy", "nodes/proxy"]
                            .contains($0)
                    }
                )
                #expect(Set(verbs).isSubset(of: ["get", "list", "watch"]))
                #expect(rule["resourceNames"] == nil && rule["nonResourceURLs"] == nil)
            }
        }
        #expect(rules == KubernetesManifests.readonlyRules.count + KubernetesManifests.namespaceListRules.count)
    }

    @Test func bindingsUseTheNewRoleAndTheOIDCEmail() throws {
        let docs = try documents()
        func name(_ d: [String: Any]) -> String? { (d["metadata"] as? [String: Any])?["name"] as? String }
        #expect(!docs.contains { name($0) == "oidc-power-user" })
        let crb = try #require(
            docs.first { $0["kind"] as? String == "ClusterRoleBinding" && name($0) == "oidc-power-user-readonly-alice" }
        )
        #expect((crb["roleRef"] as? [String: Any])?["name"] as? String == "oidc-power-user-readonly")
        #expect(((crb["subjects"] as? [[String: Any]])?.first)?["name"] as? String == "alice@example.org")
        #expect(((crb["subjects"] as? [[String: Any]])?.first)?["kind"] as? String == "User")
        let rb = try #require(docs.first { $0["kind"] as? String == "RoleBinding" })
        #expect((rb["metadata"] as? [String: Any])?["namespace"] as? String == "team-bob")
        #expect((rb["roleRef"] as? [String: Any])?["name"] as? String == "admin")
        #expect(((rb["subjects"] as? [[String: Any]])?.first)?["name"] as? String == "bob@example.org")
        #expect(
            docs.contains {
                $0["kind"] as? String == "ClusterRoleBinding" && name($0) == "oidc-namespace-owner-list-bob-dev"
            }
        )
        #expect(!docs.contains { name($0)?.contains("carol") == true }, "admins are not bound")
    }

    @Test func rbacNeedsAnEmailPerUser() throws {
        let r = try Roster.parse(
            Data("users:\n  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n".utf8),
            file: "roster.yaml"
        )
        #expect(throws: RenderError.self) { try KubernetesManifests.rbac(roster: r, settings: KubernetesSettings()) }
    }

    @Test func k8sUsersAndPolicy() throws {
        let text = KubernetesManifests.k8sUsers(roster: roster)
        #expect(text.contains(#""alice" = { role = "power-user", namespaces = [], email = "alice@example.org" }"#))
        #expect(
            text.contains(
                #""bob" = { role = "namespace-owner", namespaces = ["team-bob"], email = "bob@example.org" }"#
            )
        )
        var a = AuthentikSettings(url: "https://auth.example.org")
        a.gateHost = "t3.example.org"
        #expect(
            KubernetesManifests.authentikPolicy(a).contains(
                "if host == \"t3.example.org\":\n    return ak_is_group_member(request.user, name=\"T3 Users\")"
            )
        )
    }

    @Test func settingsSectionsParseWithDefaultsAndLocateMistakes() throws {
        let ok = try Settings.parse(
            Data(
                "authentik: {url: https://auth.example.org/}\nvault: {url: https://vault.example.org}\nkubernetes: {}\n"
                    .utf8
            ),
            file: "w.yaml"
        )
        #expect(ok.authentik?.url == "https://auth.example.org")
        #expect(ok.authentik?.gateGroup == "T3 Users")
        #expect(ok.authentik?.token.environment == "AUTHENTIK_TOKEN")
        #expect(ok.vault?.token.environment == "VAULT_TOKEN")
        #expect(ok.kubernetes?.readonlyRole == "oidc-power-user-readonly")
        #expect(Settings().authentik == nil && Settings().vault == nil && Settings().kubernetes == nil)
        let cases: [(String, String)] = [
            ("authentik: {token_file: /x}\n", "missing required key 'url'"),
            ("kubernetes: {readonly_role: oidc-power-user}\n", "must not be oidc-power-user"),
            ("kubernetes: {server: https://k.example.org}\n", "set all three or none"),
            (
                "vault:\n  url: https://v.example.org\n  secret_files:\n    - {name: a, path: p, key: k, target: /etc/passwd}\n",
                "relative to the home"
            ),
            (
                "vault:\n  url: https://v.example.org\n  secret_files:\n    - {name: a, path: p, key: k, target: ../x}\n",
                "relative to the home"
            ),
            (
                "vault:\n  url: https://v.example.org\n  secret_files:\n    - {name: a, path: p, key: k, target: x, tiers: [admin]}\n",
                "must be power-user or namespace-owner"
            ),
            ("vault: {url: ftp://v.example.org}\n", "http(s) URL"),
            ("authentik: {url: https://a.example.org, tokn_file: /x}\n", "did you mean 'token_file'"),
        ]
        for (yaml, message) in cases {
            do {
                _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
                Issue.record("accepted: \(yaml)")
            } catch let f as ValidationFailure {
                #expect(f.description.contains(message), "\(f.description)")
                #expect(f.description.hasPrefix("w.yaml:"))
            }
        }
    }
}
