import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

/// The lifecycle stages that talk to the services: the cut removes the gate-group membership on Authentik, the
/// revoke deletes exactly the Vault secret files apply wrote, and putting the entry back restores the membership.
@Suite(.serialized) struct OffboardingIntegrationTests {
    func withoutAlice(_ s: Sandbox) -> String {
        s.roster.split(separator: "\n").filter { !$0.contains("alice:") }.joined(separator: "\n") + "\n"
    }

    @Test func cutRemovesTheGateMembershipRevokeDeletesTheSecretsAndApplyRestores() throws {
        let s = try Sandbox()
        #expect(try s.apply().succeeded)
        #expect(s.authentik.members().contains("alice.smith"))
        let original = s.roster
        s.roster = withoutAlice(s)
        #expect(try s.apply().succeeded)
        let inputs = try s.inputs()
        let hook = try #require(AuthentikGateHook.live(settings: inputs.settings, root: s.root, environment: [:]))

        let cut = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: s.root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(cut.report?.failed.isEmpty == true)
        #expect(!s.authentik.members().contains("alice.smith"))
        #expect(s.authentik.members().contains("bob"), "only alice leaves the gate group")
        let removals = s.authentik.server.mutating.filter { $0.path.hasSuffix("/remove_user/") }
        #expect(removals.count == 1)
        let state = try StateStore(root: s.root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"].map { "\($0)" }?.contains("alice.smith member of T3 Users") == true)

        let claudeJSON = s.root.path("/home/alice/.claude.json")
        try "{}\n".write(toFile: s.root.path("/home/alice/notes.txt"), atomically: true, encoding: .utf8)
        let revoke = try Offboarding.run(
            stage: .revoke,
            user: "alice",
            inputs: inputs,
            root: s.root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(revoke.report?.failed.isEmpty == true)
        #expect(!FileManager.default.fileExists(atPath: claudeJSON))
        #expect(!FileManager.default.fileExists(atPath: s.root.path("/home/alice/.local/share/beads/credential")))
        #expect(
            FileManager.default.fileExists(atPath: s.root.path("/home/alice/notes.txt")),
            "files workstation did not write stay"
        )
        #expect(FileManager.default.fileExists(atPath: s.root.path("/home/bob-dev/.local/share/beads/credential")))

        // Back in the roster: apply restores the membership the cut removed.
        s.roster = original
        let back = try s.apply()
        #expect(back.succeeded, "\(back.report.failed.map(\.error))")
        #expect(s.authentik.members().contains("alice.smith"))
    }
}
