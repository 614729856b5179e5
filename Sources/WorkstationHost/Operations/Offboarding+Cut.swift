import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

extension Offboarding {
    /// Stage cut of one or many people, in one run: each person's side is decided first
    /// (`WorkspaceOffboarding.side`: the account here, or a Kubernetes workspace, docs/scale-out.md), then every gate
    /// is checked for everyone before anything changes (a workspace's by describing its cut, which changes nothing);
    /// then the host side of everyone is cut together (`cutOnHost`) and each workspace is cut as
    /// `WorkspaceOffboarding.run` cuts it alone.
    /// - Parameters:
    ///   - users: os_users, in the order to cut them; a name given twice is cut once.
    ///   - placement: `--placement`, when given: the side to cut for everyone named.
    /// - Returns: one outcome: the changes of everyone, their messages in order, one report.
    /// - Throws: `RefusedError` (exit 3: someone is still in the roster where they are placed, has both sides
    ///   waiting and no `--placement`, has no workspace on record, or is still routed by a derived file; every
    ///   refusal of the roster and workspace gates is listed and nothing changed), `LifecycleError.noAccount` /
    ///   `.notManaged` naming the person, `LockError`, state I/O errors.
    static func cut(
        users given: [String],
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        dryRun: Bool,
        idp: (any GateMembershipHook)?,
        placement: PersonPlacement?,
        progress: (String) -> Void
    ) throws -> LifecycleOutcome {
        var users: [String] = []
        for u in given where !users.contains(u) { users.append(u) }
        let recorded = try StateStore(root: root, settings: inputs.settings).load()
        var refusals: [Refusal] = []
        var onHost: [String] = []
        var onKubernetes: [String] = []
        for user in users {
            do {
                switch try WorkspaceOffboarding.side(of: user, asked: placement, inputs: inputs, state: recorded) {
                case .host: onHost.append(user)
                case .kubernetes: onKubernetes.append(user)
                }
            } catch let refused as RefusedError {
                refusals += refused.plan.refusals
            }
        }
        var described: [String: LifecycleOutcome] = [:]
        for user in onKubernetes {
            do {
                described[user] = try WorkspaceOffboarding.run(
                    stage: .cut,
                    user: user,
                    inputs: inputs,
                    root: root,
                    dryRun: true,
                    idp: idp
                )
            } catch let refused as RefusedError {
                refusals += refused.plan.refusals
            }
        }
        if !refusals.isEmpty { throw RefusedError(plan: Plan(refusals: refusals)) }
        var outcomes: [LifecycleOutcome] = []
        if !onHost.isEmpty {
            outcomes.append(
                try cutOnHost(
                    users: onHost,
                    namingEach: users.count > 1,
                    inputs: inputs,
                    root: root,
                    runner: runner,
                    dryRun: dryRun,
                    idp: idp,
                    progress: progress
                )
            )
        }
        for user in onKubernetes {
            outcomes.append(
                dryRun
                    ? described[user]!
                    : try WorkspaceOffboarding.run(stage: .cut, user: user, inputs: inputs, root: root, idp: idp)
            )
        }
        return outcomes.count == 1 ? outcomes[0] : merged(outcomes, dryRun: dryRun)
    }

    /// The outcomes of several cuts as one: changes, notes, messages and report lines in order; the ended processes
    /// of all.
    private static func merged(_ outcomes: [LifecycleOutcome], dryRun: Bool) -> LifecycleOutcome {
        var plan = Plan()
        var report: ApplyReport?
        var messages: [String] = []
        var ended: [[String: any Sendable]] = []
        for o in outcomes {
            plan.changes += o.plan.changes
            plan.notes += o.plan.notes
            plan.refusals += o.plan.refusals
            plan.errors += o.plan.errors
            messages += o.messages
            ended += o.extra["ended_processes"] as? [[String: any Sendable]] ?? []
            if let r = o.report {
                var all = report ?? ApplyReport()
                all.applied += r.applied
                all.failed += r.failed
                all.skipped += r.skipped
                all.notes += r.notes
                report = all
            }
        }
        var outcome = LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: dryRun)
        if !dryRun { outcome.extra["ended_processes"] = ended }
        return outcome
    }

    /// Stage cut of the host side of one or many people, in one run under one run lock: every gate is checked for
    /// everyone before anything changes; then each person's cut is recorded as begun (one save of the state), the
    /// units of all of them are stopped and disabled together (`systemctl disable --now --no-reload`, in batches of
    /// `Executor.enableBatchSize`; a failed batch is retried unit by unit), and each person's logins are refused,
    /// linger disabled and processes ended; every step is journaled, and each person's cut is recorded complete or
    /// not on its own (one failed step leaves only that person's cut incomplete). A run killed at any moment leaves
    /// cuts recorded as begun, which the same command finishes (each step is idempotent). Someone still in the roster
    /// (`cut` let them through: placed on Kubernetes now) keeps their IdP gate membership.
    /// - Parameters:
    ///   - users: os_users whose host side is cut, in order, each once.
    ///   - namingEach: name the person in each ended process (`"user"`) even when `users` has one (others are cut
    ///     on Kubernetes in the same run).
    /// - Returns: one outcome: the changes of everyone, their messages in order, one report.
    /// - Throws: `RefusedError` (exit 3: someone is still routed by a derived file; nothing changed),
    ///   `LifecycleError.noAccount` / `.notManaged` naming the person, `LockError`, state I/O errors.
    static func cutOnHost(
        users: [String],
        namingEach: Bool,
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        dryRun: Bool,
        idp: (any GateMembershipHook)?,
        progress: (String) -> Void
    ) throws -> LifecycleOutcome {
        let settings = inputs.settings
        func refuse(_ gate: Gate, _ messages: [String]) -> RefusedError {
            RefusedError(plan: Plan(refusals: messages.map { Refusal(gate: gate, message: $0) }))
        }
        // Moved to Kubernetes: they keep their gate membership (their workspace uses it).
        func movedAway(_ user: String) -> Bool { inputs.roster[user] != nil }
        let lock = dryRun ? nil : try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let snap = try Observer(root: root, settings: settings).observeBase()
        let planner = Planner(settings: settings)
        var state = snap.state

        // The derived files must already exclude them (apply regenerates them from the roster).
        let ttyd = root.read(settings.derived.ttydUserMap).map { Set(DerivedFileRenderer.parseTtydUserMap($0).values) }
        // A route with a `host` goes to a Kubernetes workspace, not to this host's account.
        let dispatch = root.read(settings.derived.dispatch).flatMap { try? DispatchMap.decode($0) }.map {
            Set($0.users.values.filter { $0.host == nil }.map(\.osUser))
        }
        var routedLines: [String] = []
        var notes: [String] = []
        var records: [String: OffboardingRecord] = [:]
        var accounts: [String: PasswdEntry] = [:]
        var todo: [String] = []
        for user in users {
            var record = state.offboarding[user]
            if let old = record, old.archive != nil, let acct = snap.account(user), acct.uid != old.uid {
                record = nil  // a new account of the same name: the archived one is history (journal, archive file)
            }
            guard let account = snap.account(user) else { throw LifecycleError.noAccount(user) }
            guard let managed = state.accounts[user] else { throw LifecycleError.notManaged(user) }
            if record == nil { record = OffboardingRecord(uid: managed.uid, home: account.home) }
            if record!.done(.cut) {
                notes.append("stage cut of \(user) is recorded already; nothing to do")
                continue
            }
            var routed: [String] = []
            if ttyd?.contains(user) == true { routed.append(settings.derived.ttydUserMap) }
            if dispatch?.contains(user) == true { routed.append(settings.derived.dispatch) }
            if !routed.isEmpty {
                routedLines.append(
                    "\(routed.joined(separator: " and ")) still route '\(user)'; run workstation apply to regenerate them from the roster, then cut"
                )
            }
            records[user] = record
            accounts[user] = account
            todo.append(user)
        }
        if !routedLines.isEmpty { throw refuse(.derivedFiles, routedLines) }
        if todo.isEmpty { return LifecycleOutcome(plan: Plan(notes: notes), report: nil, dryRun: dryRun) }

        // Each person's steps; the units of everyone go first, so they are disabled in one batch, and every person's
        // units are stopped before their processes are ended.
        var plan = Plan(notes: notes)
        var unitSteps: [Change] = []
        var personSteps: [Change] = []
        var idpBefore: [String: String] = [:]
        for user in todo {
            let account = accounts[user]!
            let identity = state.identities[user]
            idpBefore[user] =
                movedAway(user)
                ? "not configured" : try idp?.membership(osUser: user, identity: identity) ?? "not configured"
            let steps = planner.cutChanges(user: user, observed: snap)
            unitSteps += steps.filter { if case .disableUnit = $0.action { true } else { false } }
            personSteps += steps.filter { if case .disableUnit = $0.action { false } else { true } }
            // Then no foothold: linger off, every process ended (their user manager included). Processes are this
            // machine's, so only on the live root.
            var st = stat()
            let lingering = lstat(root.path(joinPath(LifecycleAdapter.lingerDirectory, user)), &st) == 0
            let running =
                root.isSystem
                ? ProcReader(root: root).processes(ownedBy: account.uid).map { (pid: $0.pid, name: $0.name) } : nil
            personSteps += planner.cutSessionChanges(
                user: user,
                uid: account.uid,
                lingering: lingering,
                processes: running
            )
            if running == nil {
                plan.notes.append(
                    "processes of \(user) are not ended under --root \(root.directory): only on the live root /"
                )
            }
            if movedAway(user) {
                plan.notes.append("\(user) is placed on kubernetes now: their IdP gate membership stays")
            } else if idp != nil {
                personSteps.append(
                    Change(
                        id: .idp(user),
                        user: user,
                        kind: .pending,
                        safety: .revoke,
                        summary: "remove \(user) from the IdP gate group",
                        fields: [FieldChange("idp membership", idpBefore[user], "none")]
                    )
                )
            } else {
                plan.notes.append(
                    "idp membership: not configured (no IdP integration); remove \(user) from the gate group by hand if they are in it"
                )
            }
            plan.notes.append(
                "derived files exclude \(user): \(settings.derived.ttydUserMap), \(settings.derived.dispatch)"
            )
        }
        plan.changes = unitSteps + personSteps
        if dryRun { return LifecycleOutcome(plan: plan, report: nil, dryRun: true) }

        // Keep the first before-state if an earlier cut stopped half-way.
        let now = Date().timeIntervalSince1970.rounded()
        for user in todo {
            let before =
                records[user]!.cut?.before
                ?? planner.beforeState(user: user, observed: snap, idpMembership: idpBefore[user]!)
            records[user]!.cut = .init(time: now, before: before, completed: false)
            state.offboarding[user] = records[user]
        }
        try StateStore(root: root, settings: settings).save(state)
        let (executor, journal) = try Executor.explicitRun(
            root: root,
            settings: settings,
            runner: runner,
            systemdRunning: snap.systemdRunning,
            state: state
        )
        var report = executor.runExplicit(plan.changes, progress: progress)
        if let idp {
            for user in todo where !movedAway(user) {
                guard let change = plan.changes.first(where: { $0.id == .idp(user) }) else { continue }
                do {
                    try idp.removeFromGate(osUser: user, identity: state.identities[user])
                    report.applied.append(change)
                    journal.record(change, result: "ok")
                } catch {
                    report.failed.append((change, "\(user): \(change.summary): \(error)"))
                    journal.record(change, result: "failed", error: "\(error)")
                }
            }
        }
        state = executor.state
        for user in todo {
            records[user]!.cut!.completed =
                !report.failed.contains { $0.change.user == user }
                && !report.skipped.contains { $0.change.user == user }
            state.offboarding[user] = records[user]
        }
        try StateStore(root: root, settings: settings).save(state)
        var messages: [String] = []
        var ended: [[String: any Sendable]] = []
        for user in todo {
            let completed = records[user]!.cut!.completed
            journal.recordStage(
                .offboard(user, stage: "cut"),
                user: user,
                safety: .revoke,
                summary: "offboard stage cut of \(user)",
                ok: completed
            )
            let gone = executor.endedProcesses[user] ?? []
            if plan.changes.contains(where: { $0.id == .processes(user) }) {
                messages.append(
                    gone.isEmpty
                        ? "ended no process of \(user): none was running"
                        : "ended \(gone.count) process\(gone.count == 1 ? "" : "es") of \(user): "
                            + gone.map { "\($0.pid) (\(printable($0.name)))" }.joined(separator: ", ")
                )
            }
            ended += gone.map {
                var e: [String: any Sendable] = ["pid": $0.pid, "name": $0.name, "uids": $0.uids]
                if todo.count > 1 || namingEach { e["user"] = user }
                return e
            }
            messages.append(
                completed
                    ? (movedAway(user)
                        ? "cut recorded; to undo, place \(user) on host again in the roster and run workstation apply"
                        : "cut recorded; to undo, put \(user) back in the roster and run workstation apply")
                    : "cut\(todo.count > 1 ? " of \(user)" : "") incomplete; fix the failures and run the cut again (the first before-state is kept)"
            )
        }
        var outcome = LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: false)
        outcome.extra["ended_processes"] = ended
        return outcome
    }
}
