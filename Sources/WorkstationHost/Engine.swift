import Foundation
import WorkstationCore

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

    public var converged: Bool { verification.isEmpty }
    public var succeeded: Bool { report.failed.isEmpty && converged }
}

/// The pipeline: load -> validate -> observe -> desire -> plan -> apply -> verify.
public enum Engine {
    /// Loads and validates settings, then the roster.
    /// - Throws: `ValidationFailure` (every problem, located), or `InputError` for a missing file.
    public static func load(_ paths: InputPaths, root: HostRoot) throws -> Inputs {
        var settings = Settings()
        var settingsPath: String?
        if let explicit = paths.settings {
            guard let data = FileManager.default.contents(atPath: explicit) else { throw InputError.missing(explicit, "settings") }
            settings = try Settings.parse(data, file: explicit)
            settingsPath = explicit
        } else if let data = root.read(InputPaths.defaultSettings) {
            settingsPath = root.path(InputPaths.defaultSettings)
            settings = try Settings.parse(data, file: settingsPath!)
        }
        let rosterPath = paths.roster ?? root.path(InputPaths.defaultRoster)
        guard let data = FileManager.default.contents(atPath: rosterPath) else { throw InputError.missing(rosterPath, "roster") }
        let roster = try Roster.parse(data, file: rosterPath, settings: settings)
        return Inputs(roster: roster, settings: settings, rosterPath: rosterPath, settingsPath: settingsPath)
    }

    /// Observes the host and plans. Reads only; spawns nothing.
    /// - Throws: `ValidationFailure` for roster problems only the host shows (a pinned uid in use...).
    public static func plan(_ inputs: Inputs, root: HostRoot) throws -> (Plan, DesiredState, HostSnapshot) {
        let observer = Observer(root: root, settings: inputs.settings)
        let (snapshot, desired) = try observer.observe(roster: inputs.roster)
        if !desired.diagnostics.isEmpty { throw ValidationFailure(desired.diagnostics) }
        let plan = Planner(settings: inputs.settings).plan(desired: desired, observed: snapshot)
        return (plan, desired, snapshot)
    }

    /// Applies under the run lock, journals every change, records state, then verifies by planning again.
    /// Refusals stop the run before anything changes.
    /// - Throws: `LockError.busy`, `ValidationFailure`, `RefusedError` (exit 3), state I/O errors.
    public static func apply(_ inputs: Inputs, root: HostRoot, runner: any CommandRunner, progress: (String) -> Void = { _ in }) throws -> ApplyOutcome {
        let lock = try RunLock(root: root, settings: inputs.settings, timeout: inputs.settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let (plan, desired, snapshot) = try Engine.plan(inputs, root: root)
        if !plan.refusals.isEmpty { throw RefusedError(plan: plan) }
        var report = ApplyReport()
        var state = snapshot.state
        // A run killed while a tool ran: record what the tool did as workstation's before anything else.
        state.settleIntents(passwd: snapshot.passwd, groups: snapshot.groups)
        if !plan.isEmpty {
            let journal = try Journal(root: root, settings: inputs.settings, run: UUID().uuidString.lowercased())
            let executor = Executor(root: root, settings: inputs.settings, runner: runner, journal: journal,
                                    systemdRunning: snapshot.systemdRunning, state: state)
            let store = StateStore(root: root, settings: inputs.settings)
            executor.persist = { try store.save($0) }
            report = executor.apply(plan, progress: progress)
            state = executor.state
        }
        state.ports = desired.ports
        // Verify by observing again, unless nothing ran: then, under the lock, the first plan is the verification.
        let verification = plan.isEmpty ? plan : try Engine.plan(inputs, root: root).0
        if report.failed.isEmpty && verification.isEmpty { state.lastSuccessfulApply = Date().timeIntervalSince1970.rounded() }
        if state != snapshot.state || !plan.isEmpty {
            try StateStore(root: root, settings: inputs.settings).save(state)
        }
        return ApplyOutcome(plan: plan, report: report, verification: verification, processesSpawned: runner.spawned)
    }
}

/// A safety gate refused the run (exit 3); nothing was changed.
public struct RefusedError: Error, CustomStringConvertible {
    public var plan: Plan
    public var description: String { plan.refusals.map(\.description).joined(separator: "\n") + "\nnothing was changed" }
}

public enum InputError: Error, CustomStringConvertible {
    case missing(String, String)
    public var description: String {
        switch self {
        case .missing(let path, let what): "cannot read the \(what) file \(path); check the path (--\(what == "roster" ? "roster" : "settings") PATH)"
        }
    }
}
