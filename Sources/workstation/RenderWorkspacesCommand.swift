import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

/// `workstation render workspaces`: the Kubernetes objects of the kubernetes-placed people (docs/scale-out.md), for
/// the operator's pipeline to apply. Reads the roster, the settings and workstation's state under the root (people
/// who left keep their objects at the offboarding stage reached); writes nothing.
struct RenderWorkspaces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspaces",
        abstract:
            "The kubernetes-placed people's workspaces (StatefulSet, claim, Service, NetworkPolicy) and the namespace's objects; apply with your pipeline.",
        discussion: """
            Reads the roster, the settings (workspaces:) and workstation's state under --root: a person who left the \
            roster, or moved to the host, keeps what their offboarding stage leaves (replicas 0 after cut, no \
            ServiceAccount after revoke, only the claim after archive). Review, commit, and apply it as the rest of \
            the cluster is applied, e.g. workstation render workspaces > workspaces.yaml && kubectl apply -f \
            workspaces.yaml (never with --prune: the home claims must stay).
            """
    )
    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    func run() throws {
        let root = rootOptions.hostRoot
        do {
            let loaded = try Engine.load(inputs.paths, root: root)
            // A root that is not a host yet (a CI checkout rendering from git alone) has no state: nobody has left.
            let state =
                FileManager.default.fileExists(atPath: root.path("/etc/passwd"))
                ? try StateStore(root: root, settings: loaded.settings).load() : nil
            say(
                try WorkspaceManifests.render(
                    roster: loaded.roster,
                    settings: loaded.settings,
                    state: state,
                    source: loaded.rosterPath
                ),
                terminator: ""
            )
        } catch {
            throw reportedExit(error)
        }
    }
}
