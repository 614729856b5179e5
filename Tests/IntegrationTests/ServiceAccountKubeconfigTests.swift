import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The service-account-token kubeconfig (`kubernetes.auth`) through the whole pipeline, parsed by the real kubectl.
@Suite(.serialized) struct ServiceAccountKubeconfigTests: AuthFixtures {

    /// The service-account-token fallback: a kubeconfig naming the person's 0600 token file (no token inside),
    /// the token read per person from Vault; the real kubectl parses it.
    @Test func serviceAccountTokenKubeconfig() throws {
        let s = try sandbox(auth: "")
        s.vault.secrets["secret/k8s/alice"] = [FakeVault.Version(data: ["token": Self.k8sToken])]
        s.vault.secrets["secret/k8s/bob-dev"] = [FakeVault.Version(data: ["token": "eyJSECRETK8STOKEN.bob"])]
        s.kubernetesSection = """
            kubernetes:
              server: https://k8s.example.org:6443
              cluster_name: home
              auth: service-account-token
              service_account_token: {path: 'k8s/{os_user}', key: token}
            """
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        #expect(s.root.read("/home/alice/.kube/token") == Data(Self.k8sToken.utf8))
        #expect(
            s.stat("/home/alice/.kube/token")?.mode == 0o600 && s.stat("/home/alice/.kube/token")?.uid == s.uid("alice")
        )
        #expect(s.root.read("/home/bob-dev/.kube/token") == Data("eyJSECRETK8STOKEN.bob".utf8))
        let kc = try #require(s.root.read("/home/alice/.kube/config"))
        #expect(kc.range(of: Data(Self.k8sToken.utf8)) == nil)
        let view = try TestProcess.run(
            "/usr/bin/kubectl",
            [
                "config", "view", "--kubeconfig", s.root.path("/home/alice/.kube/config"), "-o", "json",
            ]
        )
        #expect(view.status == 0, "\(view.stderr)")
        let cfg = try #require(try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])
        let user = try #require((cfg["users"] as? [[String: Any]])?.first?["user"] as? [String: Any])
        #expect(user["tokenFile"] as? String == "/home/alice/.kube/token")
        #expect(user["exec"] == nil)
        #expect(try s.apply().plan.actionable.isEmpty)
    }
}
