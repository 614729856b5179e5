import Foundation
import WorkstationCore
import WorkstationIntegrations

/// The roster and settings of one run, validated.
public struct Inputs: Sendable {
    public var roster: Roster
    public var settings: Settings
    public var rosterPath: String
    public var settingsPath: String?
}

/// Where the inputs live: explicit paths as given, defaults under the root.
public struct InputPaths: Sendable {
    public static let defaultRoster = "/etc/workstation/roster.yaml"
    public static let defaultSettings = "/etc/workstation/workstation.yaml"
    public var roster: String?
    public var settings: String?
    public init(roster: String?, settings: String?) {
        self.roster = roster
        self.settings = settings
    }
}

/// The result of `apply`.
public struct ApplyOutcome: Sendable {
    public var plan: Plan
    public var report: ApplyReport
    /// The plan made after applying; its actionable changes are what did not converge.
    public var verification: Plan
    public var processesSpawned: Int
    /// What the plan was made from: the desired state and the host as observed before applying (nil where the
    /// caller did not plan, e.g. setup-host).
    public var observed: (desired: DesiredState, snapshot: HostSnapshot)?

    public var converged: Bool { verification.isEmpty }
    public var succeeded: Bool {
        report.failed.isEmpty && converged && plan.errors.isEmpty && verification.errors.isEmpty
    }
}

/// The pipeline: load -> validate -> observe -> desire -> plan -> apply -> verify.
public enum Engine {
    /// Loads and validates settings, then the roster.
    /// - Throws: `ValidationFailure` (every problem, located), or `InputError` for a missing file.
    public static func load(_ paths: InputPaths, root: HostRoot) throws -> Inputs {
        let (settings, settingsPath) = try loadSettings(paths, root: root)
        let rosterPath = paths.roster ?? root.path(InputPaths.defaultRoster)
        guard let data = FileManager.default.contents(atPath: rosterPath) else {
            throw InputError.missing(rosterPath, "roster")
        }
        let roster = try Roster.parse(data, file: rosterPath, settings: settings)
        return Inputs(roster: roster, settings: settings, rosterPath: rosterPath, settingsPath: settingsPath)
    }

    /// `load`, and at the same time the host's base snapshot (`Observer.observeBase`: accounts, state, units), which
    /// needs settings only: parsing a large roster and reading a large host each take tens of milliseconds. Call it
    /// where the snapshot may be taken now (plan; apply once it holds the run lock), and hand the snapshot to
    /// `plan(_:root:clients:base:)`.
    /// - Throws: as `load` (roster problems first), then as `observeBase`.
    public static func loadObserving(_ paths: InputPaths, root: HostRoot) throws -> (Inputs, HostSnapshot?) {
        let (settings, settingsPath) = try loadSettings(paths, root: root)
        let rosterPath = paths.roster ?? root.path(InputPaths.defaultRoster)
        // Without etc/passwd the root is not a host; `plan` says so, and there is nothing to read ahead.
        let isHost = FileManager.default.fileExists(atPath: root.path("/etc/passwd"))
        let observer = Observer(root: root, settings: settings)
        // Two independent reads: the host (accounts, state, dispatch.json), the roster.
        let (base, roster) = try concurrently(
            { () throws -> HostSnapshot? in
                guard isHost else { return nil }
                return try observer.observeBase()
            },
            {
                guard let data = FileManager.default.contents(atPath: rosterPath) else {
                    throw InputError.missing(rosterPath, "roster")
                }
                return try Roster.parse(data, file: rosterPath, settings: settings)
            }
        )
        return (Inputs(roster: roster, settings: settings, rosterPath: rosterPath, settingsPath: settingsPath), base)
    }

    /// Loads settings alone: the explicit file, else the default under the root if present, else defaults.
    /// - Throws: `ValidationFailure`, or `InputError.missing` for an explicit path that cannot be read.
    public static func loadSettings(_ paths: InputPaths, root: HostRoot) throws -> (settings: Settings, path: String?) {
        var settings = Settings()
        var settingsPath: String?
        if let explicit = paths.settings {
            guard let data = FileManager.default.contents(atPath: explicit) else {
                throw InputError.missing(explicit, "settings")
            }
            settings = try Settings.parse(data, file: explicit)
            settingsPath = explicit
        } else if let data = root.read(InputPaths.defaultSettings) {
            settingsPath = root.path(InputPaths.defaultSettings)
            settings = try Settings.parse(data, file: settingsPath!)
        }
        return (settings, settingsPath)
    }

    /// Observes the host and the configured services, then plans. Reads only; spawns nothing.
    /// - Parameter clients: Authentik and Vault clients; nil: the live ones for what settings configure.
    /// - Throws: `ValidationFailure` for roster problems only the host shows (a pinned uid in use...) and for a
    ///   roster tier or namespace list that disagrees with `k8s_users` (fail loud, before anything changes).
    /// - Parameter base: `observeBase` already taken for these settings (`loadObserving`); nil: taken here.
    public static func plan(
        _ inputs: Inputs,
        root: HostRoot,
        clients: IntegrationClients? = nil,
        base: HostSnapshot? = nil
    ) throws -> (Plan, DesiredState, HostSnapshot) {
        let (plan, desired, snapshot, mismatches) = try observeAndPlan(inputs, root: root, clients: clients, base: base)
        if !mismatches.isEmpty { throw ValidationFailure(mismatches) }
        return (plan, desired, snapshot)
    }

    /// `plan`, returning the `k8s_users` cross-check's problems instead of throwing them (apply still revokes the
    /// access of people who left the roster before it stops; see `revokeHeldBack`).
    /// - Throws: as `plan`, except the cross-check.
    static func observeAndPlan(
        _ inputs: Inputs,
        root: HostRoot,
        clients: IntegrationClients?,
        base: HostSnapshot?
    ) throws
        -> (Plan, DesiredState, HostSnapshot, [Diagnostic])
    {
        guard FileManager.default.fileExists(atPath: root.path("/etc/passwd")) else {
            throw InputError.notAHost(root.directory)
        }
        let observer = Observer(root: root, settings: inputs.settings)
        var (snapshot, desired) = try observer.observe(roster: inputs.roster, base: base)
        if !desired.diagnostics.isEmpty { throw ValidationFailure(desired.diagnostics) }
        let clients =
            clients
            ?? IntegrationClients.live(
                settings: inputs.settings,
                root: root,
                environment: ProcessInfo.processInfo.environment
            )
        snapshot.remote = RemoteObserver(root: root, settings: inputs.settings, clients: clients).observe(
            desired: desired,
            snapshot: snapshot
        )
        let planner = Planner(settings: inputs.settings)
        let mismatches = planner.kubernetesCrossCheck(inputs.roster, snapshot)
        if !mismatches.isEmpty { return (Plan(), desired, snapshot, mismatches) }
        var plan = planner.plan(desired: desired, observed: snapshot)
        // A command an operator is told to run must act on the same root as this run.
        if !root.isSystem { plan.changes = plan.changes.map { $0.suggesting(onRoot: root.directory) } }
        return (plan, desired, snapshot, [])
    }

    /// When a gate stops the run (a refusal, a cross-check problem), the part that only revokes still runs: the
    /// derived files lose the entries of people who left the roster (`Planner.revocationOnlyChanges`), journaled.
    /// - Returns: lines saying who was dropped from which file (empty: nothing to revoke).
    static func revokeHeldBack(
        _ inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        desired: DesiredState,
        snapshot: HostSnapshot
    ) throws -> [String] {
        let (changes, dropped) = Planner(settings: inputs.settings).revocationOnlyChanges(desired, snapshot)
        guard !changes.isEmpty else { return [] }
        let journal = try Journal(root: root, settings: inputs.settings, run: UUID().uuidString.lowercased())
        let executor = Executor(
            root: root,
            settings: inputs.settings,
            runner: runner,
            journal: journal,
            systemdRunning: snapshot.systemdRunning,
            state: snapshot.state
        )
        let report = executor.runExplicit(changes)
        var lines = report.applied.map { "revoked anyway: \($0.summary) (\(dropped.joined(separator: ", ")))" }
        lines += report.failed.map { "revocation failed: \($0.1)" }
        return lines
    }

    /// Applies under the run lock, journals every change, records state, then verifies by planning again.
    /// Refusals stop the run before anything changes.
    /// - Parameter allowOvercommit: lifts the capacity gate's refusals (`--allow-overcommit`); each lifted refusal
    ///   is journaled as change `capacity:overcommit` with result `overridden` and the arithmetic.
    /// - Throws: `LockError.busy`, `ValidationFailure`, `RefusedError` (exit 3), state I/O errors.
    public static func apply(
        _ inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        clients: IntegrationClients? = nil,
        allowOvercommit: Bool = false,
        progress: (String) -> Void = { _ in }
    ) throws -> ApplyOutcome {
        guard FileManager.default.fileExists(atPath: root.path("/etc/passwd")) else {
            throw InputError.notAHost(root.directory)
        }
        let lock = try RunLock(root: root, settings: inputs.settings, timeout: inputs.settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        return try applyHoldingLock(
            inputs,
            root: root,
            runner: runner,
            clients: clients,
            allowOvercommit: allowOvercommit,
            progress: progress
        )
    }

    /// `apply` from the input files: takes the run lock first, then loads the roster while it reads the host
    /// (`loadObserving`), so the snapshot is taken under the lock. On a host without a lock file yet (the first
    /// run), the roster is checked before the lock file is created: bad input never leaves a file behind.
    /// - Throws: as `load` and `apply`.
    public static func apply(
        _ paths: InputPaths,
        root: HostRoot,
        runner: any CommandRunner,
        clients: IntegrationClients? = nil,
        allowOvercommit: Bool = false,
        progress: (String) -> Void = { _ in }
    ) throws -> ApplyOutcome {
        let settings = try loadSettings(paths, root: root).settings
        guard FileManager.default.fileExists(atPath: root.path("/etc/passwd")),
            RunLock.exists(root: root, settings: settings)
        else {
            return try apply(
                load(paths, root: root),
                root: root,
                runner: runner,
                clients: clients,
                allowOvercommit: allowOvercommit,
                progress: progress
            )
        }
        let lock = try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let (inputs, base) = try loadObserving(paths, root: root)
        return try applyHoldingLock(
            inputs,
            root: root,
            runner: runner,
            clients: clients,
            allowOvercommit: allowOvercommit,
            base: base,
            progress: progress
        )
    }

    /// `apply` for a caller that already holds the `RunLock` (cutover runs apply for its user inside its own run).
    /// - Parameter user: when set, only that user's changes run, plus the host-wide changes they depend on (its groups).
    /// - Throws: as `apply`, except `LockError`.
    public static func applyHoldingLock(
        _ inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        clients: IntegrationClients? = nil,
        allowOvercommit: Bool = false,
        only user: String? = nil,
        base: HostSnapshot? = nil,
        progress: (String) -> Void = { _ in }
    ) throws -> ApplyOutcome {
        let clients =
            clients
            ?? IntegrationClients.live(
                settings: inputs.settings,
                root: root,
                environment: ProcessInfo.processInfo.environment
            )
        var (plan, desired, snapshot, mismatches) = try Engine.observeAndPlan(
            inputs,
            root: root,
            clients: clients,
            base: base
        )
        if !mismatches.isEmpty {
            var failure = ValidationFailure(mismatches)
            failure.revoked = try revokeHeldBack(
                inputs,
                root: root,
                runner: runner,
                desired: desired,
                snapshot: snapshot
            )
            throw failure
        }
        let overridden = allowOvercommit ? plan.refusals.filter { $0.gate == .capacity } : []
        plan.refusals.removeAll { overridden.contains($0) }
        if !plan.refusals.isEmpty {
            // The lockout guard protects admins, whom the revocation keeps anyway; any other gate holds back what
            // the run adds, never the revocation of people who left.
            var refused = RefusedError(plan: plan)
            refused.revoked = try revokeHeldBack(
                inputs,
                root: root,
                runner: runner,
                desired: desired,
                snapshot: snapshot
            )
            throw refused
        }
        if let user {
            let needed = Set(plan.changes.filter { $0.user == user }.flatMap(\.dependsOn))
            plan.changes = plan.changes.filter { $0.user == user || needed.contains($0.id) }
        }
        var report = ApplyReport()
        var state = snapshot.state
        // A run killed while a tool ran: record what the tool did as workstation's before anything else.
        state.settleIntents(passwd: snapshot.passwd, groups: snapshot.groups)
        // Secret files whose Vault read failed stay on record until written (the write clears them).
        for (user, paths) in Planner(settings: inputs.settings).unreadSecretFiles(desired, snapshot).sorted(by: {
            $0.key < $1.key
        }) {
            for p in paths where state.secretFilesPending[user]?.contains(p) != true {
                state.secretFilesPending[user, default: []].append(p)
            }
        }
        let journal =
            overridden.isEmpty && plan.isEmpty
            ? nil : try Journal(root: root, settings: inputs.settings, run: UUID().uuidString.lowercased())
        for r in overridden {
            journal?.record(
                Change(
                    id: .capacity("overcommit"),
                    user: nil,
                    kind: .update,
                    safety: .additive,
                    summary: "admission gate overridden with --allow-overcommit",
                    fields: [FieldChange("refusal", nil, r.message)]
                ),
                result: "overridden"
            )
            plan.notes.append("capacity gate overridden (--allow-overcommit, journaled): \(r.message)")
        }
        var log: StateLog?
        if !plan.isEmpty {
            let executor = Executor(
                root: root,
                settings: inputs.settings,
                runner: runner,
                journal: journal,
                systemdRunning: snapshot.systemdRunning,
                state: state,
                clients: clients
            )
            let stateLog = try StateLog(store: StateStore(root: root, settings: inputs.settings), state: state)
            executor.persist = { try stateLog.record($0, users: $1) }
            executor.persistAfterChange = { try stateLog.record($0, users: $1, durable: false) }
            log = stateLog
            report = executor.apply(plan, progress: progress)
            state = executor.state
        }
        state.ports = desired.ports
        // The identity provider's signing keys, for the dispatcher's token check: fetched on every apply.
        switch JWKSRefresh.refresh(inputs.settings.authentik, root: root) {
        case .notConfigured, .unchanged: break
        case .written(let path):
            plan.notes.append("signing keys written to \(path) (authentik.jwks_url)")
            journal?.record(
                Change(
                    id: .jwks(path),
                    user: nil,
                    kind: .update,
                    safety: .derived,
                    summary: "identity provider signing keys refreshed",
                    fields: []
                ),
                result: "ok"
            )
        case .failed(let why):
            plan.notes.append("signing keys not refreshed, the ones written last stay in force: \(why)")
        }
        // Verify by observing again, unless nothing ran: then, under the lock, the first plan is the verification.
        let verification = plan.isEmpty ? plan : try Engine.plan(inputs, root: root, clients: clients).0
        LifecycleState.afterApply(&state, roster: inputs.roster, verification: verification, settings: inputs.settings)
        LifecycleState.recordWorkspaces(
            &state,
            roster: inputs.roster,
            settings: inputs.settings,
            now: Date().timeIntervalSince1970.rounded()
        )
        if report.failed.isEmpty && verification.isEmpty {
            state.lastSuccessfulApply = Date().timeIntervalSince1970.rounded()
        }
        if let log {
            try log.save(state)
        } else if state != snapshot.state {
            // A run that changed nothing records only when it last verified clean: one line in the state log
            // instead of rewriting the whole record each time the timer runs.
            var before = state
            before.lastSuccessfulApply = snapshot.state.lastSuccessfulApply
            let store = StateStore(root: root, settings: inputs.settings)
            if before == snapshot.state {
                try StateLog.recordHostWide(state, store: store)
            } else {
                try store.save(state)
            }
        }
        return ApplyOutcome(
            plan: plan,
            report: report,
            verification: verification,
            processesSpawned: runner.spawned,
            observed: (desired, snapshot)
        )
    }
}

/// A safety gate refused the run (exit 3); nothing was changed.
public struct RefusedError: Error, CustomStringConvertible {
    public var plan: Plan
    /// What ran although the gate refused: the revocation of people who left the roster (empty: nothing changed).
    public var revoked: [String] = []
    public init(plan: Plan) { self.plan = plan }
    public var description: String {
        plan.refusals.map(\.description).joined(separator: "\n")
            + (revoked.isEmpty
                ? "\nnothing was changed" : "\n" + revoked.joined(separator: "\n") + "\nnothing else was changed")
    }
}

public enum InputError: Error, CustomStringConvertible {
    case missing(String, String)
    case notAHost(String)
    public var description: String {
        switch self {
        case .notAHost(let dir):
            "\(dir) has no etc/passwd, so it is not a host root; check --root, or pass --init-root to apply to seed a sandbox there"
        case .missing(let path, let what):
            "cannot read the \(what) file \(path); check the path (--\(what == "roster" ? "roster" : "settings") PATH)"
        }
    }
}
