import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// The hook through which the cut stage drops a user from the IdP gate group (the Authentik `T3 Users` group).
/// The Authentik integration implements it; without one, the cut records `idp membership: not configured`.
public protocol GateMembershipHook: Sendable {
    /// The user's gate-group membership now, in words (e.g. `member of T3 Users`), for the cut record.
    /// - Throws: the integration's error; the cut stops before changing anything.
    func membership(osUser: String, identity: RecordedIdentity?) throws -> String
    /// Removes the user from the gate group; idempotent (not a member: success).
    /// - Throws: the integration's error; recorded as a failed step.
    func removeFromGate(osUser: String, identity: RecordedIdentity?) throws
}

/// What a lifecycle command did (or, with `dryRun`, would do).
public struct LifecycleOutcome: Sendable {
    /// The changes of the stage, in order.
    public var plan: Plan
    /// nil for a dry run or when there was nothing to do.
    public var report: ApplyReport?
    /// Lines for the operator: steps for an admin, what was recorded, where copies went.
    public var messages: [String] = []
    public var dryRun: Bool
    /// JSON extras (stage, record...).
    public var extra: [String: any Sendable] = [:]

    public init(plan: Plan, report: ApplyReport?, messages: [String] = [], dryRun: Bool) {
        self.plan = plan
        self.report = report
        self.messages = messages
        self.dryRun = dryRun
    }

    public var succeeded: Bool { report?.failed.isEmpty ?? true && report?.skipped.isEmpty ?? true }
}

/// `workstation offboard USER --stage cut|revoke|archive` (spec "User lifecycle"): the only code that runs the
/// revoke and destroy changes of offboarding; each run holds the run lock, journals every step and records the stage
/// in state.
public enum Offboarding {
    /// Runs (or with `dryRun` only plans) one stage for `user`.
    /// - Parameters:
    ///   - confirm: the `--confirm` value; the archive stage needs it equal to `user`.
    ///   - force: skip the idle part of the archive gate (never the running-process check).
    ///   - idp: the gate-group hook, when the IdP integration is configured.
    /// - Throws: `RefusedError` (exit 3: still in the roster, stage order, confirmation, running processes, busy),
    ///   `LifecycleError`, `LockError`, state I/O errors.
    public static func run(
        stage: OffboardStage,
        user: String,
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        dryRun: Bool = false,
        confirm: String? = nil,
        force: Bool = false,
        idp: (any GateMembershipHook)? = nil,
        placement: PersonPlacement? = nil,
        progress: (String) -> Void = { _ in }
    ) throws -> LifecycleOutcome {
        if stage == .cut {
            return try cut(
                users: [user],
                inputs: inputs,
                root: root,
                runner: runner,
                dryRun: dryRun,
                idp: idp,
                placement: placement,
                progress: progress
            )
        }
        let settings = inputs.settings
        func refuse(_ gate: Gate, _ message: String) -> RefusedError {
            RefusedError(plan: Plan(refusals: [Refusal(gate: gate, message: message)]))
        }
        // A Kubernetes workspace, or the host side of someone placed on Kubernetes now (docs/scale-out.md).
        let recorded = try StateStore(root: root, settings: settings).load()
        let side = try WorkspaceOffboarding.side(of: user, asked: placement, inputs: inputs, state: recorded)
        if side == .kubernetes {
            return try WorkspaceOffboarding.run(
                stage: stage,
                user: user,
                inputs: inputs,
                root: root,
                dryRun: dryRun,
                confirm: confirm,
                idp: idp
            )
        }
        // Moved to Kubernetes: they keep their cluster identity (their workspace uses it); the cut, which handles
        // the gate membership, is Offboarding+Cut.
        let movedAway = inputs.roster[user] != nil
        let lock = dryRun ? nil : try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let observer = Observer(root: root, settings: settings)
        var snap = try observer.observeBase()
        let planner = Planner(settings: settings)
        var state = snap.state
        var record = state.offboarding[user]
        if let old = record, let archived = old.archive {
            if let acct = snap.account(user), acct.uid != old.uid {
                record = nil  // a new account of the same name: the archived one is history (journal, archive file)
            } else if stage == .archive {
                return LifecycleOutcome(
                    plan: Plan(notes: ["\(user) was archived already (\(archived.path)); nothing to do"]),
                    report: nil,
                    dryRun: dryRun
                )
            }
        }
        guard let account = snap.account(user) else { throw LifecycleError.noAccount(user) }
        guard let managed = state.accounts[user] else { throw LifecycleError.notManaged(user) }
        if record == nil { record = OffboardingRecord(uid: managed.uid, home: account.home) }
        if let missing = OffboardStage.allCases.first(where: { $0 < stage && !record!.done($0) }) {
            throw refuse(
                .stageOrder,
                LifecycleError.stageOrder(user: user, stage: stage, missing: missing).description
            )
        }
        if record!.done(stage) {
            return LifecycleOutcome(
                plan: Plan(notes: ["stage \(stage.rawValue) of \(user) is recorded already; nothing to do"]),
                report: nil,
                dryRun: dryRun
            )
        }
        let identity = state.identities[user]
        var plan = Plan()
        var messages: [String] = []

        switch stage {
        case .cut:
            // Handled above (`cut(users:)`), before the lock.
            return LifecycleOutcome(plan: Plan(), report: nil, dryRun: dryRun)

        case .revoke:
            let kept = changedSecretFiles(user: user, account: account, state: state, root: root)
            plan.changes = planner.revokeChanges(user: user, observed: snap, kept: kept)
            let steps =
                movedAway
                ? []
                : planner.clusterRevocationSteps(
                    user: user,
                    identity: identity,
                    inK8sUsers: k8sUsersHolds(identity?.k8sUser ?? user, settings: settings, root: root)
                )
            if movedAway {
                plan.notes.append("\(user) is placed on kubernetes now: their cluster identity and RBAC stay")
            }
            messages = steps.map { "admin: \($0)" }
            if plan.changes.isEmpty { plan.notes.append("no per-user secret files are recorded for \(user)") }
            if dryRun { return LifecycleOutcome(plan: plan, report: nil, messages: messages, dryRun: true) }
            let paths = state.secretFilesWritten[user] ?? []
            let present = paths.filter { observer.pathState($0).kind != .absent }
            let (executor, journal) = try Executor.explicitRun(
                root: root,
                settings: settings,
                runner: runner,
                systemdRunning: snap.systemdRunning,
                state: state
            )
            let report = executor.runExplicit(plan.changes, progress: progress)
            state = executor.state
            let deleted = report.applied.compactMap { c -> String? in
                if case .removeHomeEntry(_, let p, _)? = c.action, present.contains(p) { return p }
                return nil
            }
            for (path, why) in kept.sorted(by: { $0.key < $1.key }) {
                messages.append("kept \(path): \(why); it stays in the home and goes into the archive")
            }
            if report.failed.isEmpty {
                record!.revoke = .init(
                    time: Date().timeIntervalSince1970.rounded(),
                    deletedFiles: deleted,
                    absentFiles: paths.filter { !present.contains($0) },
                    adminSteps: steps,
                    keptFiles: kept.isEmpty ? nil : kept
                )
                state.secretFilesWritten[user] = nil
                state.writtenDigests[user] = nil
                state.secretFilesPending[user] = nil
                state.offboarding[user] = record
            }
            try StateStore(root: root, settings: settings).save(state)
            journal.recordStage(
                .offboard(user, stage: "revoke"),
                user: user,
                safety: .revoke,
                summary: "offboard stage revoke of \(user)",
                ok: record!.revoke != nil
            )
            return LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: false)

        case .archive:
            guard confirm == user else {
                throw refuse(.confirmation, LifecycleError.confirm(user: user, given: confirm).description)
            }
            let gate = IdleGate(root: root, settings: settings)
            let idle = gate.check(user: user, uid: account.uid, state: state)
            if !idle.unreadable.isEmpty {
                throw refuse(
                    .runningProcesses,
                    "cannot tell whether \(user) still runs processes: " + idle.busyLines.joined(separator: "; ")
                        + "; fix the read, then archive (--force does not skip this)"
                )
            }
            if !idle.processes.isEmpty {
                throw refuse(
                    .runningProcesses,
                    "\(user) still runs \(idle.processes.count) process(es): "
                        + idle.processes.map { "\($0.pid) (\(printable($0.name)))" }.joined(separator: ", ")
                        + "; end them (the cut stopped the units), then archive"
                )
            }
            if !idle.isIdle && !force {
                throw refuse(
                    .idleGate,
                    "\(user) is busy: " + idle.busyLines.joined(separator: "; ") + "; wait, or pass --force"
                )
            }
            let stamp = ISO8601DateFormatter.string(
                from: Date(),
                timeZone: TimeZone(identifier: "UTC")!,
                formatOptions: [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
            )
            let archive = joinPath(
                settings.offboard.backupDirectory,
                OffboardingRecord.Archive.fileName(user: user, uid: account.uid, stamp: stamp)
            )
            observer.observePaths(
                planner.personSystemFiles(user: user, uid: account.uid).map { WatchedPath($0) },
                into: &snap
            )
            plan.changes = planner.archiveChanges(
                user: user,
                uid: account.uid,
                home: account.home,
                archive: archive,
                observed: snap
            )
            if dryRun { return LifecycleOutcome(plan: plan, report: nil, dryRun: true) }
            let (executor, journal) = try Executor.explicitRun(
                root: root,
                settings: settings,
                runner: runner,
                systemdRunning: snap.systemdRunning,
                state: state
            )
            let report = executor.runExplicit(plan.changes, progress: progress)
            state = executor.state
            if let done = executor.archives[user], report.failed.isEmpty {
                record!.archive = done
                state.offboarding[user] = record
                if !state.retiredUids.contains(account.uid) { state.retiredUids.append(account.uid) }
                state.accounts[user] = nil
                state.addedMemberships[user] = nil
                for t in state.ports.keys { state.ports[t]?[user] = nil }
                journal.recordStage(
                    .offboard(user, stage: "archive"),
                    user: user,
                    safety: .destroy,
                    summary: "offboard stage archive of \(user): uid \(account.uid) retired",
                    ok: true
                )
                messages.append(
                    "archived to \(done.path) (\(done.bytes) bytes, sha256 \(done.sha256), \(done.entries) entries); uid \(account.uid) is retired"
                )
            }
            try StateStore(root: root, settings: settings).save(state)
            return LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: false)
        }
    }
}

extension Offboarding {
    /// Runs (or with `dryRun` only plans) one stage for each of `users`. Stage cut takes them all in one run
    /// (`cut(users:)`: one lock, their units disabled together); revoke and archive take one os_user at a time.
    /// - Throws: as `run(stage:user:...)`; `LifecycleError.onePersonAtATime` for revoke or archive of several.
    public static func run(
        stage: OffboardStage,
        users: [String],
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        dryRun: Bool = false,
        confirm: String? = nil,
        force: Bool = false,
        idp: (any GateMembershipHook)? = nil,
        placement: PersonPlacement? = nil,
        progress: (String) -> Void = { _ in }
    ) throws -> LifecycleOutcome {
        if stage == .cut {
            return try cut(
                users: users,
                inputs: inputs,
                root: root,
                runner: runner,
                dryRun: dryRun,
                idp: idp,
                placement: placement,
                progress: progress
            )
        }
        guard users.count == 1, let user = users.first else { throw LifecycleError.onePersonAtATime(stage) }
        return try run(
            stage: stage,
            user: user,
            inputs: inputs,
            root: root,
            runner: runner,
            dryRun: dryRun,
            confirm: confirm,
            force: force,
            idp: idp,
            placement: placement,
            progress: progress
        )
    }

    /// Whether the `k8s_users` file (`kubernetes.k8s_users_file`) has an entry `k8sUser`; nil when it is not
    /// configured or cannot be read and parsed (then both owners' revocation steps are printed).
    static func k8sUsersHolds(_ k8sUser: String, settings: Settings, root: HostRoot) -> Bool? {
        guard let file = settings.kubernetes?.k8sUsersFile, let data = root.read(file) else { return nil }
        let obs = K8sUsersObservation.parse(data, file: root.path(file))
        return obs.problems.isEmpty ? obs.entries[k8sUser] != nil : nil
    }

    /// The recorded secret files of `user` that the revoke stage must keep (host path -> why): each is read
    /// through the home-writer (never following a link) and kept unless it holds exactly the bytes workstation
    /// wrote (`state.written_digests`). Absent files are not listed.
    static func changedSecretFiles(
        user: String,
        account: PasswdEntry,
        state: WorkstationState,
        root: HostRoot
    ) -> [String: String] {
        let homes = HomeWriter(root: root)
        let owner = HomeWriter.Owner(uid: account.uid, gid: account.gid)
        let prefix = account.home.hasSuffix("/") ? account.home : account.home + "/"
        var kept: [String: String] = [:]
        for path in state.secretFilesWritten[user] ?? [] {
            guard path.hasPrefix(prefix) else {
                kept[path] = "it is not under the home \(account.home)"
                continue
            }
            let st: PathState
            do {
                st = try homes.inspect(
                    home: account.home,
                    relative: String(path.dropFirst(prefix.count)),
                    owner: owner,
                    maxBytes: 16 << 20
                )
            } catch {
                kept[path] = "it cannot be read safely (\(error))"
                continue
            }
            switch st.kind {
            case .absent: continue
            case .file:
                guard let want = state.writtenDigests[user]?[path] else {
                    kept[path] = "no digest of what workstation wrote is recorded (written before digests were kept)"
                    continue
                }
                guard let content = st.content, contentDigest(content) == want else {
                    kept[path] = "changed since workstation wrote it"
                    continue
                }
            default:
                kept[path] = "it is a \(st.kind.rawValue) now, not the file workstation wrote"
            }
        }
        return kept
    }
}

extension Journal {
    /// One line marking a lifecycle stage or command as recorded (`ok`) or left incomplete (`failed`).
    func recordStage(_ id: ResourceID, user: String, safety: SafetyClass, summary: String, ok: Bool) {
        record(
            Change(id: id, user: user, kind: .pending, safety: safety, summary: summary),
            result: ok ? "ok" : "failed",
            error: ok ? nil : "incomplete; see the failed steps above"
        )
    }
}
