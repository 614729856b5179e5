import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// A bad Authentik, Kubernetes or Vault setting: located at its line, and nothing changed anywhere.
@Suite(.serialized) struct BadIntegrationSettingsTests {
    @Test func aBadIntegrationSettingChangesNothingAndNamesTheLine() throws {
        let s = try Sandbox()
        s.kubernetesSection = "kubernetes:\n  readonly_role: oidc-power-user\n"
        try s.prepare()
        let before = s.snapshot()
        let r = try CLI.run([
            "apply", "--roster", s.rosterPath, "--settings", s.settingsPath, "--root", s.dir,
        ])
        #expect(r.status == 1)
        #expect(r.stderr.contains("workstation.yaml:") && r.stderr.contains("must not be oidc-power-user"))
        #expect(r.stderr.contains("nothing was changed"))
        #expect(s.snapshot() == before)
        #expect(s.authentik.server.requests.isEmpty && s.vault.server.requests.isEmpty)
    }
}
