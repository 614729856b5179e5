import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The whole pipeline (observe -> plan -> apply -> verify) against a sandbox root with the real shadow utilities,
/// and real Authentik and Vault servers on 127.0.0.1.
@Suite(.serialized) struct PipelineTests {
    @Test func firstApplyConvergesSecondApplyChangesNothingRemote() throws {
        let s = try Sandbox()
        let first = try s.apply()
        #expect(first.succeeded, "\(first.report.failed.map(\.error)) \(first.plan.errors)")
        // Gate group: every roster identity, admins included; nobody removed.
        #expect(s.authentik.members() == ["alice.smith", "bob", "carol"])
        #expect(s.authentik.server.mutating.count == 2)
        #expect(s.authentik.server.mutating.allSatisfy { $0.path.hasSuffix("/add_user/") })

        // Kubeconfig: 0600, owned by the user, parsed by the real kubectl.
        let aliceUID = try #require(s.uid("alice"))
        #expect(s.stat("/home/alice/.kube/config")?.mode == 0o600)
        #expect(s.stat("/home/alice/.kube/config")?.uid == aliceUID)
        #expect(s.stat("/home/alice/.kube")?.mode == 0o700)
        let view = try TestProcess.run(
            "/usr/bin/kubectl",
            [
                "config", "view", "--kubeconfig", s.root.path("/home/alice/.kube/config"), "-o", "json",
            ]
        )
        #expect(view.status == 0, "\(view.stderr)")
        let cfg = try #require(try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])
        #expect(cfg["current-context"] as? String == "alice@home")
        let user = try #require(
            ((cfg["users"] as? [[String: Any]])?.first?["user"] as? [String: Any])?["exec"] as? [String: Any]
        )
        #expect(user["command"] as? String == "kubectl")
        #expect(user["apiVersion"] as? String == "client.authentication.k8s.io/v1")
        #expect(user["interactiveMode"] as? String == "IfAvailable")
        #expect(
            (user["args"] as? [String])?.contains(
                "--oidc-issuer-url=https://auth.example.org/application/o/kubernetes/"
            ) == true
        )
        let cluster = try #require(((cfg["clusters"] as? [[String: Any]])?.first?["cluster"] as? [String: Any]))
        #expect(cluster["server"] as? String == "https://k8s.example.org:6443")
        let bobView = try TestProcess.run(
            "/usr/bin/kubectl",
            [
                "config", "view", "--kubeconfig", s.root.path("/home/bob-dev/.kube/config"), "-o",
                "json",
            ]
        )
        #expect(bobView.status == 0)
        #expect(bobView.stdout.contains("\"namespace\": \"team-bob\""))

        // Vault helper: address and tier role, never a token.
        let helper = try #require(
            s.root.read("/home/alice/.config/workstation/vault.env").map { String(decoding: $0, as: UTF8.self) }
        )
        #expect(helper.contains("export VAULT_ADDR='\(s.vault.url)'"))
        #expect(helper.contains("export VAULT_OIDC_ROLE='ws-read'"))
        #expect(!helper.contains(s.vault.token))
        #expect(
            String(decoding: s.root.read("/home/bob-dev/.config/workstation/vault.env") ?? Data(), as: UTF8.self)
                .contains("VAULT_OIDC_ROLE='ws-ns'")
        )
        #expect(s.root.read("/etc/profile.d/workstation-vault.sh") != nil)

        // Secret files: flagged user only for the MCP URL, both tiers for the credential; 0600, owned by the user.
        let claudeJSON = try #require(s.root.read("/home/alice/.claude.json"))
        let mcp = try #require(try JSONSerialization.jsonObject(with: claudeJSON) as? [String: Any])
        #expect(((mcp["mcpServers"] as? [String: Any])?["ha"] as? [String: Any])?["url"] as? String == Secrets.haURL)
        #expect(s.stat("/home/alice/.claude.json")?.mode == 0o600)
        #expect(s.stat("/home/alice/.claude.json")?.uid == aliceUID)
        #expect(s.root.read("/home/bob-dev/.claude.json") == nil)
        #expect(s.root.read("/home/bob-dev/.local/share/beads/credential") == Data(Secrets.beads.utf8))
        #expect(s.stat("/home/bob-dev/.local/share/beads/credential")?.uid == s.uid("bob-dev"))

        // State records exactly the secret files workstation wrote.
        let state = try StateStore(root: s.root, settings: Settings()).load()
        #expect(
            state.secretFilesWritten["alice"]?.sorted() == [
                "/home/alice/.claude.json", "/home/alice/.local/share/beads/credential",
            ]
        )
        #expect(state.secretFilesWritten["bob-dev"] == ["/home/bob-dev/.local/share/beads/credential"])
        #expect(state.homeFiles?["alice"]?.sorted() == [".config/workstation/vault.env", ".kube/config"])

        // Idempotency: a second apply makes no changing call anywhere and changes nothing on the host.
        let postsBefore = s.authentik.server.mutating.count
        let vaultReadsBefore = s.vault.server.requests.count
        let before = s.snapshot().entries.filter { !$0.key.hasPrefix("var/lib/workstation") }
        let second = try s.apply()
        #expect(second.succeeded)
        #expect(second.plan.actionable.isEmpty, "\(second.plan.actionable.map(\.summary))")
        #expect(s.authentik.server.mutating.count == postsBefore)
        #expect(s.vault.server.mutating.isEmpty)
        #expect(s.vault.server.requests.count == vaultReadsBefore, "secrets already written are not read again")
        #expect(s.snapshot().entries.filter { !$0.key.hasPrefix("var/lib/workstation") } == before)
        // Nothing reports a kept kubeconfig or secret that workstation itself wrote.
        #expect(second.plan.changes.filter { $0.kind == .conflict }.isEmpty, "\(second.plan.changes.map(\.summary))")
    }

    @Test func membersNotInTheRosterAreRevokePendingAndNeverRemoved() throws {
        let s = try Sandbox(members: ["carol", "mallory", "zed"])
        let out = try s.apply()
        let pending = out.plan.changes.filter { $0.kind == .pending && $0.id.description.hasPrefix("idp-revoke:") }
        #expect(pending.map(\.id.description) == ["idp-revoke:mallory", "idp-revoke:zed"])
        #expect(pending.allSatisfy { $0.safety == .revoke && $0.action == nil })
        #expect(!s.authentik.server.mutating.contains { $0.path.hasSuffix("/remove_user/") })
        #expect(s.authentik.members() == ["alice.smith", "bob", "carol", "mallory", "zed"])
    }

    @Test func unknownAuthentikUserHoldsBackOnlyThatUser() throws {
        let s = try Sandbox(authentikUsers: ["carol", "alice.smith"])
        let out = try s.apply()
        #expect(!out.succeeded)
        #expect(out.plan.errors.contains { $0.contains("bob-dev") && $0.contains("'bob'") && $0.contains("held back") })
        #expect(s.uid("bob-dev") == nil, "bob-dev's host side is untouched")
        #expect(s.uid("alice") != nil, "the rest of the plan still runs")
        #expect(s.authentik.members() == ["alice.smith", "carol"])
    }

    @Test func forbiddenAddLeavesThatUsersHostSideUntouched() throws {
        let s = try Sandbox()
        s.authentik.forbidden = [102]  // bob
        let out = try s.apply()
        #expect(!out.succeeded)
        #expect(out.report.failed.map(\.change.id) == ["idp:bob-dev"])
        #expect(out.report.failed.first?.error.contains("refused (403)") == true)
        #expect(out.report.skipped.allSatisfy { $0.change.user == "bob-dev" })
        #expect(!out.report.skipped.isEmpty)
        #expect(s.uid("bob-dev") == nil)
        #expect(s.uid("alice") != nil)
    }

    @Test func unreachableAuthentikHoldsEveryoneAndExitsWithAnError() throws {
        let s = try Sandbox()
        s.authentik.failEverything = 503
        let out = try s.apply()
        #expect(!out.succeeded)
        #expect(out.plan.errors.first?.contains("HTTP 503") == true)
        #expect(s.uid("alice") == nil && s.uid("bob-dev") == nil)
        #expect(s.root.read("/etc/ttyd-user-map") != nil, "host-wide derived files still run")
    }

    @Test(arguments: [
        (
            "tier",
            #"{"alice": {"role": "namespace-owner", "namespaces": ["x"]}, "bob": {"role": "namespace-owner", "namespaces": ["team-bob"]}}"#,
            ["tier power-user", "role namespace-owner"]
        ),
        (
            "namespaces",
            #"{"alice": {"role": "power-user", "namespaces": []}, "bob": {"role": "namespace-owner", "namespaces": ["team-bob", "other"]}}"#,
            ["[team-bob]", "[other, team-bob]"]
        ),
    ])
    func k8sMismatchFailsLoudBeforeAnythingChanges(_ what: String, _ k8s: String, _ named: [String]) throws {
        let s = try Sandbox()
        s.k8sUsers = k8s
        try s.prepare()
        // The run lock (an empty file in the state directory) is the only thing a refused run may leave.
        func hostBytes() -> [String: TreeSnapshot.Entry] {
            s.snapshot().entries.filter { !["var/lib/workstation", "var/lib/workstation/lock"].contains($0.key) }
        }
        let before = hostBytes()
        do {
            _ = try s.plan()
            Issue.record("plan must fail on a \(what) mismatch")
        } catch let f as ValidationFailure {
            for n in named { #expect(f.description.contains(n), "\(f.description)") }
            #expect(f.description.contains("k8s_users.json:"))
        }
        #expect(throws: ValidationFailure.self) { try s.apply() }
        #expect(hostBytes() == before)
        #expect(s.authentik.server.mutating.isEmpty)
    }

    @Test func rosterUserMissingFromK8sUsersIsReportedWithTheEntryToAdd() throws {
        let s = try Sandbox()
        s.k8sUsers =
            #"{"carol": {"role": "admin", "namespaces": []}, "alice": {"role": "power-user", "namespaces": []}}"#
        let plan = try s.plan()
        let c = try #require(plan.changes.first { $0.id == "k8s-users:bob-dev" })
        #expect(c.kind == .conflict)
        #expect(
            c.fields.first?.after
                == #""bob" = { role = "namespace-owner", namespaces = ["team-bob"], email = "bob@example.org" }"#
        )
        #expect(plan.errors.isEmpty)
    }

    @Test func unreadableK8sUsersFileFailsLoud() throws {
        let s = try Sandbox()
        s.k8sUsers = nil
        #expect(throws: ValidationFailure.self) { try s.plan() }
        s.k8sUsers = "{not json: ["
        #expect(throws: ValidationFailure.self) { try s.plan() }
    }

    @Test func existingKubeconfigAndClaudeFilesAreKeptAndReported() throws {
        let s = try Sandbox()
        _ = try s.apply()  // creates accounts
        // A fresh user state: remove what workstation wrote and put the user's own files in place.
        try FileManager.default.removeItem(atPath: s.root.path("/var/lib/workstation/state.json"))
        let own = "# my own kubeconfig\n"
        try s.write("/home/alice/.kube/config", own)
        try s.write("/home/alice/.claude.json", "{\"mine\": true}\n")
        let plan = try s.plan()
        #expect(
            plan.changes.contains { $0.id == "kubeconfig:alice" && $0.kind == .conflict && $0.summary.contains("kept") }
        )
        #expect(plan.changes.contains { $0.id == "secret:alice:ha-mcp" && $0.kind == .conflict })
        _ = try s.apply()
        #expect(s.root.read("/home/alice/.kube/config") == Data(own.utf8))
        #expect(s.root.read("/home/alice/.claude.json") == Data("{\"mine\": true}\n".utf8))
    }

    @Test func secretUnderAnExistingClaudeDirectoryIsNeverWritten() throws {
        let s = try Sandbox()
        s.vaultSection = """
            vault:
              url: \(s.vault.url)
              token_file: /etc/workstation/vault.token
              secret_files:
                - {name: creds, path: beads, key: password, target: .claude/.credentials.json}
                - {name: clone, path: beads, key: password, target: code/.beads/credential}
            """
        _ = try s.apply()
        // First run: ~/.claude did not exist, so workstation made it and the secret went in after it.
        #expect(s.root.read("/home/alice/.claude/.credentials.json") == Data(Secrets.beads.utf8))
        // ~/code does not exist: the clone's credential waits and nothing creates ~/code.
        #expect(FileManager.default.fileExists(atPath: s.root.path("/home/alice/code")) == false)
        try FileManager.default.removeItem(atPath: s.root.path("/home/alice/.claude/.credentials.json"))
        let plan = try s.plan()
        let c = try #require(plan.changes.first { $0.id == "secret:alice:creds" })
        #expect(c.kind == .conflict && c.summary.contains("never writes into an existing ~/.claude"))
        #expect(plan.changes.first { $0.id == "secret:alice:clone" }?.summary.contains("does not exist yet") == true)
    }

    @Test(arguments: ["denied", "missing", "deleted", "badtoken"])
    func vaultReadFailuresAreErrorsAndWriteNothing(_ failure: String) throws {
        let s = try Sandbox()
        switch failure {
        case "denied": s.vault.denied = ["secret/openclaw"]
        case "missing": s.vault.secrets["secret/openclaw"] = nil
        case "deleted":
            s.vault.secrets["secret/openclaw"]!.append(
                FakeVault.Version(data: ["ha_url": "x"], deletionTime: "2026-11-20T08:00:00Z")
            )
        default: try s.write("/etc/workstation/vault.token", "hvs.not-the-token")
        }
        let out = try s.apply()
        #expect(!out.succeeded)
        let err = try #require(out.plan.errors.first { $0.contains("secret/openclaw#ha_url") })
        #expect(err.hasPrefix("alice: vault:"))
        let expected = [
            "denied": "refused (403)", "missing": "(404)", "deleted": "deleted at 2026-11-20T08:00:00Z",
            "badtoken": "refused (403)",
        ][failure]!
        #expect(err.contains(expected), "\(err)")
        #expect(s.root.read("/home/alice/.claude.json") == nil)
        #expect(s.uid("alice") != nil, "the rest of the plan still runs")
        #expect(s.root.read("/home/alice/.kube/config") != nil)
    }

    @Test func servicesNotConfiguredAreSkippedWithOneNoteEach() throws {
        let s = try Sandbox()
        s.authentikSection = nil
        s.kubernetesSection = nil
        s.vaultSection = nil
        let out = try s.apply()
        #expect(out.succeeded)
        #expect(out.plan.notes.filter { $0.hasPrefix("authentik is not configured") }.count == 1)
        #expect(out.plan.notes.filter { $0.hasPrefix("kubernetes is not configured") }.count == 1)
        #expect(out.plan.notes.filter { $0.hasPrefix("vault is not configured") }.count == 1)
        #expect(s.authentik.server.requests.isEmpty && s.vault.server.requests.isEmpty)
        #expect(s.root.read("/home/alice/.kube/config") == nil)
    }
}
