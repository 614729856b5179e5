import Foundation

/// workstation's record of one kubernetes-placed person's workspace (`state.json`, `workspaces`): written by every
/// apply that routes them to it, kept after they leave the roster or move to the host, so that `render workspaces`
/// goes on rendering what is left of it at the offboarding stage reached, and `offboard` knows it.
///
/// Shape (JSON): `uid`, `namespace`, `tier`, `since` (seconds since 1970), and the offboarding times `cut`,
/// `revoke`, `archive`, `claim_released` (absent until the stage ran).
public struct WorkspaceRecord: Sendable, Hashable, Codable {
    public var uid: Int
    public var namespace: String
    public var tier: String
    /// Seconds since 1970 of the apply that first routed the person to this workspace.
    public var since: Double
    /// `offboard --stage cut`: the StatefulSet renders with `replicas: 0` (the route was dropped by apply).
    public var cut: Double?
    /// `offboard --stage revoke`: the ServiceAccount is no longer rendered; RBAC and Secrets deletion printed.
    public var revoke: Double?
    /// `offboard --stage archive`: only the home claim is rendered, labelled archived.
    public var archive: Double?
    /// `offboard --stage archive --confirm`: the claim is no longer rendered and its deletion was printed.
    public var claimReleased: Double?

    public init(uid: Int, namespace: String, tier: String, since: Double) {
        self.uid = uid
        self.namespace = namespace
        self.tier = tier
        self.since = since
    }

    /// True when `stage` has run.
    public func done(_ stage: OffboardStage) -> Bool {
        switch stage {
        case .cut: cut != nil
        case .revoke: revoke != nil
        case .archive: archive != nil
        }
    }

    /// The first stage not run yet; nil once archived.
    public var nextStage: OffboardStage? { OffboardStage.allCases.first { !done($0) } }

    /// True while offboarding has started but the claim is still rendered (cut, revoked or archived).
    public var offboarding: Bool { cut != nil && claimReleased == nil }
}

extension LifecycleState {
    /// Records every kubernetes-placed roster person's workspace after an apply routed them to it. A record of
    /// someone back in the roster after offboarding started starts again (their objects render whole again, the
    /// kept claim included); a record whose claim was released gives way to a new one.
    /// - Parameter now: seconds since 1970.
    public static func recordWorkspaces(
        _ state: inout WorkstationState,
        roster: Roster,
        settings: Settings,
        now: Double
    ) {
        guard let w = settings.workspaces else { return }
        for e in roster.kubernetesPlaced(settings) {
            guard let uid = e.uid else { continue }
            if var rec = state.workspaces[e.osUser], rec.cut == nil {
                rec.uid = uid
                rec.namespace = w.namespace
                rec.tier = e.tier.rawValue
                state.workspaces[e.osUser] = rec
            } else {
                state.workspaces[e.osUser] = WorkspaceRecord(
                    uid: uid,
                    namespace: w.namespace,
                    tier: e.tier.rawValue,
                    since: now
                )
            }
        }
    }
}
