import Foundation
import WorkstationCore

/// `workstation offboard USER --stage cut|revoke|archive --placement kubernetes`: the staged offboarding of a
/// Kubernetes workspace (docs/scale-out.md, "Lifecycle"), for someone who left the roster or moved to the host.
/// workstation never edits the cluster: each stage is recorded in state (so `render workspaces` renders what the stage
/// leaves), journaled, and prints the commands for the operator's pipeline or an admin.
///
/// - cut: the StatefulSet renders with `replicas: 0`; the route was already dropped by `apply`; the IdP gate
///   membership is removed (for someone who left; someone who moved to the host keeps it).
/// - revoke: the ServiceAccount (Vault's role binds it) is no longer rendered; the Secrets and the Vault role are
///   printed for deletion, and, for someone who left, their cluster RBAC as the host revoke prints it.
/// - archive: only the home claim is rendered, labelled `workstation/stage: archived`; with `--confirm USER` the
///   claim is released too (no longer rendered) and its deletion printed. Nothing else deletes it.
public enum WorkspaceOffboarding {
    /// Which side of `user` an offboard command acts on.
    /// - Parameter asked: `--placement`, when given.
    /// - Returns: `.kubernetes` for the workspace, `.host` for the account here (the host path also reports a user
    ///   workstation does not know).
    /// - Throws: `RefusedError` when the person is still placed where `asked` says, or both sides wait and no
    ///   `--placement` says which.
    public static func side(
        of user: String,
        asked: PersonPlacement?,
        inputs: Inputs,
        state: WorkstationState
    ) throws
        -> PersonPlacement
    {
        let workspacePending = state.workspaces[user].map { $0.claimReleased == nil } ?? false
        let hostPending = state.accounts[user] != nil
        func refuse(_ message: String) -> RefusedError {
            RefusedError(plan: Plan(refusals: [Refusal(gate: .roster, message: message)]))
        }
        if let entry = inputs.roster[user] {
            let placed = entry.placement(inputs.settings)
            if asked == placed || (asked == nil && placed == .host && !workspacePending)
                || (asked == nil && placed == .kubernetes && !hostPending)
            {
                throw refuse(
                    "'\(user)' is still in the roster (\(inputs.rosterPath)), placed on \(placed.rawValue); remove the entry (or change the placement) and run workstation apply before offboarding"
                )
            }
            return placed == .host ? .kubernetes : .host
        }
        if let asked { return asked }
        // Only a workspace on record (its claim released too): that side says there is nothing left to do.
        if state.workspaces[user] != nil && !hostPending { return .kubernetes }
        if workspacePending && hostPending {
            throw refuse(
                "'\(user)' has both an account on this host and a Kubernetes workspace to offboard; say which with --placement host or --placement kubernetes"
            )
        }
        return workspacePending ? .kubernetes : .host
    }

    /// Runs (or with `dryRun` only describes) one stage of `user`'s workspace offboarding.
    /// - Throws: `RefusedError` (exit 3: stage order, confirmation, still routed), `LifecycleError`, `LockError`,
    ///   state I/O errors.
    public static func run(
        stage: OffboardStage,
        user: String,
        inputs: Inputs,
        root: HostRoot,
        dryRun: Bool = false,
        confirm: String? = nil,
        idp: (any GateMembershipHook)? = nil
    ) throws -> LifecycleOutcome {
        let settings = inputs.settings
        func refuse(_ gate: Gate, _ message: String) -> RefusedError {
            RefusedError(plan: Plan(refusals: [Refusal(gate: gate, message: message)]))
        }
        let lock = dryRun ? nil : try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let store = StateStore(root: root, settings: settings)
        var state = try store.load()
        guard var rec = state.workspaces[user] else {
            throw refuse(.workspace, "no Kubernetes workspace of '\(user)' is on record; nothing to offboard there")
        }
        if rec.claimReleased != nil {
            return LifecycleOutcome(
                plan: Plan(notes: [
                    "the workspace of \(user) was archived and its claim released already; nothing to do"
                ]),
                report: nil,
                dryRun: dryRun
            )
        }
        if let missing = OffboardStage.allCases.first(where: { $0 < stage && !rec.done($0) }) {
            throw refuse(
                .stageOrder,
                "stage \(stage.rawValue) needs stage \(missing.rawValue) first; run: workstation offboard \(user) --stage \(missing.rawValue) --placement kubernetes"
            )
        }
        if let confirm, confirm != user {
            throw refuse(.confirmation, LifecycleError.confirm(user: user, given: confirm).description)
        }
        let releasing = stage == .archive && confirm == user
        if rec.done(stage) && !releasing {
            return LifecycleOutcome(
                plan: Plan(notes: ["stage \(stage.rawValue) of \(user)'s workspace is recorded already; nothing to do"]
                ),
                report: nil,
                dryRun: dryRun
            )
        }
        let name = workspaceObjectName(user) ?? user
        let ns = rec.namespace
        let selector = KubernetesManifests.revocationSelector(osUser: user)
        let left = inputs.roster[user] == nil
        let identity = state.identities[user]
        var plan = Plan()
        var messages: [String] = []
        func pending(_ id: ResourceID, _ summary: String, safety: SafetyClass = .revoke) {
            plan.changes.append(
                Change(id: id, user: user, kind: .pending, safety: safety, summary: summary)
            )
        }
        switch stage {
        case .cut:
            if let data = root.read(settings.derived.dispatch), let map = try? DispatchMap.decode(data),
                map.users.values.contains(where: { $0.osUser == user && $0.host != nil })
            {
                throw refuse(
                    .derivedFiles,
                    "\(settings.derived.dispatch) still routes '\(user)' to their workspace; run workstation apply to regenerate it from the roster, then cut"
                )
            }
            pending(.workspace(user, "replicas"), "render the StatefulSet \(ns)/\(name) with replicas 0")
            if left && idp != nil {
                pending(.idp(user), "remove \(user) from the IdP gate group")
            } else if left {
                plan.notes.append(
                    "idp membership: not configured (no IdP integration); remove \(user) from the gate group by hand if they are in it"
                )
            }
            messages.append(
                "admin: stop it now: kubectl -n \(ns) scale statefulset \(name) --replicas=0 (the next render of workspaces says replicas: 0 too; apply it with your pipeline)"
            )
        case .revoke:
            pending(.workspace(user, "serviceaccount"), "stop rendering the ServiceAccount \(ns)/\(name)")
            messages.append("admin: kubectl -n \(ns) delete serviceaccount \(name) --ignore-not-found")
            messages.append(
                "admin: kubectl -n \(ns) delete secret \(WorkspaceManifests.secretName(user)) \(WorkspaceManifests.tlsSecretName(user)) --ignore-not-found (and stop your pipeline from filling them)"
            )
            if settings.workspaces?.secrets == .vaultInjector {
                let role = (settings.workspaces?.secretsRole ?? "workspace-{os_user}")
                    .replacingOccurrences(of: "{os_user}", with: user)
                messages.append(
                    "admin: delete the Vault Kubernetes auth role \(role) (e.g. vault delete auth/kubernetes/role/\(role), with your auth mount)"
                )
            }
            if left {
                messages += Planner(settings: settings).clusterRevocationSteps(
                    user: user,
                    identity: identity,
                    inK8sUsers: Offboarding.k8sUsersHolds(identity?.k8sUser ?? user, settings: settings, root: root)
                ).map { "admin: \($0)" }
            } else {
                plan.notes.append("\(user) is in the roster (placed on the host): their cluster identity and RBAC stay")
            }
        case .archive:
            if !rec.done(.archive) {
                pending(
                    .workspace(user, "archive"),
                    "render only the claim \(WorkspaceManifests.claimName(user)), labelled archived"
                )
                messages.append(
                    "admin: kubectl -n \(ns) delete statefulset,service,networkpolicy,serviceaccount -l \(selector) --ignore-not-found (no longer rendered; a pipeline that does not prune keeps them)"
                )
            }
            if releasing {
                pending(
                    .workspace(user, "claim"),
                    "release the claim \(ns)/\(WorkspaceManifests.claimName(user)) (no longer rendered; its data is deleted)",
                    safety: .destroy
                )
                messages.append(
                    "admin: kubectl -n \(ns) delete persistentvolumeclaim \(WorkspaceManifests.claimName(user)) (what happens to the volume is its storage class's reclaimPolicy)"
                )
            } else {
                messages.append(
                    "the claim \(ns)/\(WorkspaceManifests.claimName(user)) is kept, labelled workstation/stage=archived; to delete it: workstation offboard \(user) --stage archive --placement kubernetes --confirm \(user)"
                )
            }
        }
        if dryRun { return LifecycleOutcome(plan: plan, report: nil, messages: messages, dryRun: true) }
        let journal = try Journal(root: root, settings: settings, run: UUID().uuidString.lowercased())
        var report = ApplyReport()
        if stage == .cut, left, let idp, let change = plan.changes.first(where: { $0.id == .idp(user) }) {
            do {
                try idp.removeFromGate(osUser: user, identity: identity)
                report.applied.append(change)
                journal.record(change, result: "ok")
            } catch {
                report.failed.append((change, "\(user): \(change.summary): \(error)"))
                journal.record(change, result: "failed", error: "\(error)")
            }
        }
        let now = Date().timeIntervalSince1970.rounded()
        switch stage {
        case .cut: rec.cut = report.failed.isEmpty ? now : nil
        case .revoke: rec.revoke = now
        case .archive:
            if rec.archive == nil { rec.archive = now }
            if releasing { rec.claimReleased = now }
        }
        state.workspaces[user] = rec
        try store.save(state)
        journal.recordStage(
            .offboardWorkspace(user, stage: stage.rawValue + (releasing ? ":claim" : "")),
            user: user,
            safety: releasing ? .destroy : .revoke,
            summary:
                "offboard stage \(stage.rawValue) of \(user)'s Kubernetes workspace\(releasing ? ", claim released" : "")",
            ok: report.failed.isEmpty
        )
        messages.append(
            report.failed.isEmpty
                ? "stage \(stage.rawValue) of \(user)'s workspace recorded; workstation render workspaces now renders what it leaves: apply that with your pipeline"
                : "cut incomplete; fix the failures and run the cut again"
        )
        let ran = report.applied.isEmpty && report.failed.isEmpty ? nil : report
        return LifecycleOutcome(plan: plan, report: ran, messages: messages, dryRun: false)
    }
}
