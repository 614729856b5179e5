import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// `workstation render rbac | k8s-users | authentik-policy` through the binary, for the sandbox's roster.
@Suite(.serialized) struct RenderCommandTests {
    @Test func renderCommandsPrintForTheRoster() throws {
        let s = try Sandbox()
        try s.prepare()
        let base = ["--roster", s.rosterPath, "--settings", s.settingsPath, "--root", s.dir]
        let rbac = try CLI.run(["render", "rbac"] + base)
        #expect(rbac.status == 0, "\(rbac.stderr)")
        #expect(rbac.stdout.contains("name: \"oidc-power-user-readonly\""))
        let users = try CLI.run(["render", "k8s-users"] + base)
        #expect(users.stdout.contains(#""alice" = { role = "power-user""#))
        let policy = try CLI.run(["render", "authentik-policy"] + base)
        #expect(policy.stdout.contains(#"ak_is_group_member(request.user, name="T3 Users")"#))
        s.authentikSection = nil
        try s.prepare()
        let none = try CLI.run(["render", "authentik-policy"] + base)
        #expect(none.status == 1 && none.stderr.contains("authentik is not configured"))
    }
}
