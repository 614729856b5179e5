import Foundation

/// Kubernetes-placed people in the host's plan (docs/scale-out.md). Their objects are not applied by workstation:
/// `render workspaces` prints them and the operator's pipeline applies them. On this host they are a route in
/// dispatch.json (a derived change like any other), a line in the admission gate, and, once they leave the roster or
/// move to the host, a pending offboarding of the workspace through the same stages.
extension Planner {
    /// One pending change per workspace on record that the roster no longer places on Kubernetes, naming the
    /// offboard command of its next stage (`--placement kubernetes`).
    func departedWorkspaceChanges(_ d: DesiredState, _ o: HostSnapshot) -> [Change] {
        d.departedWorkspaces.compactMap { name in
            guard let rec = o.state.workspaces[name], let next = rec.nextStage else { return nil }
            let moved = d.users.contains { $0.osUser == name }
            return Change(
                id: .offboardWorkspace(name),
                user: name,
                kind: .pending,
                safety: .revoke,
                summary: moved
                    ? "\(name) is placed on the host now: offboard their workspace in namespace \(rec.namespace) pending"
                    : "\(name) left the roster: offboard their workspace in namespace \(rec.namespace) pending (apply drops the route at once)",
                reason: next == .cut
                    ? "render workspaces keeps their StatefulSet at one replica until the cut stage"
                    : "workspace offboarding stopped before stage \(next.rawValue)",
                command: "workstation offboard \(name) --stage \(next.rawValue) --placement kubernetes"
            )
        }
    }

    /// A note naming the kubernetes-placed people (nothing to apply on this host for them but the route).
    func workspaceNotes(_ d: DesiredState, into plan: inout Plan) {
        guard !d.workspaces.isEmpty, let w = settings.workspaces else { return }
        let names = d.workspaces.map(\.osUser)
        plan.notes.append(
            "placed on kubernetes (namespace \(w.namespace)): \(abbreviatedList(names, separator: ", ")); their workspaces are printed by workstation render workspaces, for your pipeline to apply"
        )
    }
}
