import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

/// OIDC logins on a shared host open no capturable local port: kubeconfigs use kubelogin's keyboard or device-code
/// grant (never the default browser flow on localhost:8000), and the Vault helper never sends people to
/// `vault login -method=oidc` (localhost:8250).
@Suite(.serialized) struct LocalListenerTests {
    /// The kubelogin arguments of a kubeconfig as the real kubectl reads them.
    func kubeloginArgs(_ kubeconfig: String) throws -> [String] {
        let dir = try TempRoot("kube")
        try dir.write("/config", kubeconfig)
        let view = try TestProcess.run(
            "/usr/bin/kubectl",
            ["config", "view", "--kubeconfig", dir.file("/config"), "-o", "json"]
        )
        try #require(view.status == 0, "\(view.stderr)")
        let cfg = try #require(try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])
        let exec = try #require(
            ((cfg["users"] as? [[String: Any]])?.first?["user"] as? [String: Any])?["exec"] as? [String: Any]
        )
        #expect(exec["interactiveMode"] as? String == "IfAvailable")
        return try #require(exec["args"] as? [String])
    }

    static let base =
        "kubernetes: {server: https://k8s.example.org:6443, oidc_issuer_url: https://auth.example.org/o/k/, oidc_client_id: k"

    @Test(arguments: [
        ("}", ["--grant-type=authcode-keyboard", "--oidc-redirect-url=urn:ietf:wg:oauth:2.0:oob"]),
        (
            ", grant_type: authcode-keyboard}",
            ["--grant-type=authcode-keyboard", "--oidc-redirect-url=urn:ietf:wg:oauth:2.0:oob"]
        ),
        (
            ", grant_type: authcode-keyboard, redirect_url: 'https://auth.example.org/show-code'}",
            ["--grant-type=authcode-keyboard", "--oidc-redirect-url=https://auth.example.org/show-code"]
        ),
        (", grant_type: device-code}", ["--grant-type=device-code"]),
    ])
    func theGrantIsRenderedIntoTheKubeloginArgs(settings: String, expected: [String]) throws {
        let s = try Settings.parse(Data((Self.base + settings + "\n").utf8), file: "w.yaml")
        let k = try #require(s.kubernetes)
        let roster = try Roster.parse(
            Data("users:\n  alice: {authentik_user: alice, k8s_user: alice, tier: power-user}\n".utf8),
            file: "r.yaml"
        )
        let entry = try #require(roster["alice"])
        let args = try kubeloginArgs(
            String(decoding: KubernetesManifests.kubeconfig(entry, settings: k, ca: nil), as: UTF8.self)
        )
        #expect(
            Array(args.prefix(5)) == [
                "oidc-login", "get-token", "--oidc-issuer-url=https://auth.example.org/o/k/", "--oidc-client-id=k",
                "--oidc-extra-scope=email",
            ]
        )
        #expect(Array(args.dropFirst(5)) == expected)
        #expect(!args.contains { $0.hasPrefix("--listen-address") })
    }

    @Test(arguments: [
        ("grant_type: authcode", "kubelogin listen on localhost:8000"),
        ("grant_type: auto", "kubelogin listen on localhost:8000"),
        ("grant_type: password", "their password passes through kubelogin"),
        ("grant_type: client-credentials", "shared client secret"),
        ("grant_type: browser", "must be authcode-keyboard (the default) or device-code, got 'browser'"),
        ("redirect_url: 'http://localhost:8000/'", "is a loopback address"),
        ("redirect_url: 'http://127.0.0.1/'", "is a loopback address"),
        ("redirect_url: 'https://[::1]:8443/cb'", "is a loopback address"),
        ("redirect_url: 'http://auth.example.org/code'", "must use https"),
        (
            "grant_type: device-code, redirect_url: 'urn:ietf:wg:oauth:2.0:oob'",
            "used by grant_type authcode-keyboard only"
        ),
    ])
    func aGrantThatOpensAPortIsRefusedAtItsLineWithTheFix(setting: String, message: String) throws {
        let yaml = "config_base: /srv/base\n" + Self.base + ",\n  \(setting)}\n"
        do {
            _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
            Issue.record("accepted: \(setting)")
        } catch let f as ValidationFailure {
            #expect(f.description.hasPrefix("w.yaml:3:"), "\(f.description)")
            #expect(f.description.contains(message), "\(f.description)")
            if setting.hasPrefix("grant_type: auth") || setting.hasPrefix("grant_type: auto") {
                #expect(
                    f.description.contains("use grant_type: authcode-keyboard (the default) or device-code"),
                    "\(f.description)"
                )
            }
        }
    }

    @Test func applyWritesAKeyboardKubeconfigAndAVaultHelperWithoutTheCallbackFlow() throws {
        let s = try Sandbox()
        let outcome = try s.apply()
        #expect(outcome.succeeded, "\(outcome.report.failed.map(\.error)) \(outcome.plan.errors)")
        let kubeconfig = try #require(
            s.root.read("/home/alice/.kube/config").map { String(decoding: $0, as: UTF8.self) }
        )
        let args = try kubeloginArgs(kubeconfig)
        #expect(args.suffix(2) == ["--grant-type=authcode-keyboard", "--oidc-redirect-url=urn:ietf:wg:oauth:2.0:oob"])

        let helper = try #require(
            s.root.read("/home/alice/.config/workstation/vault.env").map { String(decoding: $0, as: UTF8.self) }
        )
        #expect(helper.contains("#   2. here: vault login   (paste it at the hidden prompt"))
        #expect(helper.contains("$VAULT_ADDR/ui/ , method OIDC, role $VAULT_OIDC_ROLE"))
        // -method=oidc appears only in the warning, never as the thing to run.
        let mentions = helper.split(separator: "\n").filter { $0.contains("-method=oidc") }
        #expect(
            mentions == [
                "# Not vault login -method=oidc: its callback listens on localhost:8250, which any account here can take first."
            ]
        )
        // Sourced by a login shell, it still sets the variables.
        let sh = try TestProcess.run(
            "/bin/sh",
            [
                "-c", ". \"$0\" && printf '%s|%s' \"$VAULT_ADDR\" \"$VAULT_OIDC_ROLE\"",
                s.root.path("/home/alice/.config/workstation/vault.env"),
            ]
        )
        #expect(sh.stdout == "\(s.vault.url)|ws-read")
    }
}
