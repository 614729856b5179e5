import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// A recording fake of the IdP gate-group hook.
final class RecordingGateHook: GateMembershipHook, @unchecked Sendable {
    var removed: [(String, String?)] = []
    var failRemoval = false
    func membership(osUser: String, identity: RecordedIdentity?) throws -> String { "member of T3 Users" }
    func removeFromGate(osUser: String, identity: RecordedIdentity?) throws {
        if failRemoval { throw CommandError.failed(command: ["idp"], status: 1, stderr: "403") }
        removed.append((osUser, identity?.authentikUser))
    }
}

@Suite(.serialized) struct OffboardingHookTests {
    func cutReadyHost() throws -> (HostRoot, Inputs, TempRoot) {
        let temp = try TempRoot("lc")
        let dir = temp.path
        let root = HostRoot(dir)
        try SandboxRoot.seed(root, settings: Settings())
        let full =
            "users:\n  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n"
        try temp.write("/roster.yaml", full)
        _ = try Engine.apply(
            try Engine.load(InputPaths(roster: dir + "/roster.yaml", settings: nil), root: root),
            root: root,
            runner: ProcessRunner()
        )
        try temp.write("/roster.yaml", "users:\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n")
        let inputs = try Engine.load(InputPaths(roster: dir + "/roster.yaml", settings: nil), root: root)
        _ = try Engine.apply(inputs, root: root, runner: ProcessRunner())
        return (root, inputs, temp)
    }

    @Test func cutCallsTheHookWithTheRecordedIdentityAndRecordsTheMembership() throws {
        let (root, inputs, temp) = try cutReadyHost()
        defer { withExtendedLifetime(temp) {} }
        let hook = RecordingGateHook()
        let dry = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            dryRun: true,
            idp: hook
        )
        #expect(dry.plan.changes.contains { $0.id == "idp:alice" } && hook.removed.isEmpty)
        let out = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(out.succeeded)
        #expect(hook.removed.map(\.0) == ["alice"] && hook.removed.map(\.1) == ["alice.smith"])
        let state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.before.idpMembership == "member of T3 Users")
        #expect(state.offboarding["alice"]?.cut?.completed == true)
    }

    @Test func aFailingHookLeavesTheCutIncompleteAndARerunKeepsTheFirstBeforeState() throws {
        let (root, inputs, temp) = try cutReadyHost()
        defer { withExtendedLifetime(temp) {} }
        let hook = RecordingGateHook()
        hook.failRemoval = true
        let first = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(!first.succeeded && first.report?.failed.map(\.change.id) == ["idp:alice"])
        var state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.completed == false)
        #expect(state.offboarding["alice"]?.cut?.before.units == ["t3-serve@alice.service": true])
        hook.failRemoval = false
        let second = try Offboarding.run(
            stage: .cut,
            user: "alice",
            inputs: inputs,
            root: root,
            runner: ProcessRunner(),
            idp: hook
        )
        #expect(second.succeeded)
        state = try StateStore(root: root, settings: inputs.settings).load()
        #expect(state.offboarding["alice"]?.cut?.completed == true)
        #expect(
            state.offboarding["alice"]?.cut?.before.units == ["t3-serve@alice.service": true],
            "the before-state of the first attempt is kept"
        )
    }
}
