import Foundation
import WorkstationCore
import WorkstationIntegrations

#if canImport(Glibc)
import Glibc
#endif

/// What an apply did.
public struct ApplyReport: Sendable {
    public var applied: [Change] = []
    /// Changes that failed, with the error (naming the user and the command).
    public var failed: [(change: Change, error: String)] = []
    /// Changes not attempted because one they depend on failed.
    public var skipped: [(change: Change, reason: String)] = []
    public var notes: [String] = []
}

/// Runs the actionable changes of a plan through the adapters, in order, journaling each.
/// Revoke and destroy changes are never run here (they are not actionable in a plan).
public final class Executor {
    public let root: HostRoot
    public let settings: Settings
    public let runner: any CommandRunner
    public let journal: Journal?
    public let systemdRunning: Bool
    let homes: HomeWriter
    let accounts: AccountLookup
    var unitFilesDirty = false

    /// `systemctl VERB NAME` on a running systemd (systemctl(1)), after one `daemon-reload` when unit files were
    /// written since the last; a no-op where systemd does not run (a sandbox root).
    private func runningUnit(_ verb: String, _ name: String) throws {
        guard systemdRunning else { return }
        if unitFilesDirty {
            try runner.check(["systemctl", "daemon-reload"])
            unitFilesDirty = false
        }
        try runner.check(["systemctl", verb, name])
    }

    public internal(set) var state: WorkstationState
    /// Authentik and Vault clients for the integration actions.
    public let clients: IntegrationClients
    private lazy var lifecycle = LifecycleAdapter(
        root: root,
        runner: runner,
        systemdRunning: systemdRunning,
        accounts: accounts
    )
    /// os_user -> the verified archive an `archiveHome` change wrote in this run.
    public var archives: [String: OffboardingRecord.Archive] { lifecycle.archives }
    /// os_user -> the processes an `endProcesses` change signalled.
    public var endedProcesses: [String: [OwnedProcess]] { lifecycle.ended }
    /// Called with the state after every change that altered it (an account created, a group, a membership), and
    /// with the os_users whose entries the change touched, so a run killed half-way still leaves a record of what
    /// workstation created. Engine records it in `StateLog` here.
    public var persist: ((WorkstationState, Set<String>) throws -> Void)?
    /// Like `persist`, for the record after a change, which need not be on disk before the next change runs (an
    /// intent, recorded through `persist`, must be: its tool runs next). Engine records it in `StateLog` without an
    /// `fsync`; the next intent, save or close syncs it. nil: `persist`.
    public var persistAfterChange: ((WorkstationState, Set<String>) throws -> Void)?
    /// os_users whose state entries the change being run touched.
    var touchedUsers = Set<String>()
    /// True once the change being run recorded an intent: its end is recorded too, even when it leaves the state
    /// as it was (the intent must not outlive the change in the record).
    private var intentRecorded = false

    public init(
        root: HostRoot,
        settings: Settings,
        runner: any CommandRunner,
        journal: Journal?,
        systemdRunning: Bool,
        state: WorkstationState,
        clients: IntegrationClients = IntegrationClients()
    ) {
        self.clients = clients
        self.root = root
        self.settings = settings
        self.runner = runner
        self.journal = journal
        self.systemdRunning = systemdRunning
        self.homes = HomeWriter(root: root)
        self.accounts = AccountLookup(root: root)
        self.state = state
    }

    /// Applies `plan.actionable` in order. A change whose dependency failed is skipped; independent changes
    /// (other users) still run.
    public func apply(_ plan: Plan, progress: (String) -> Void = { _ in }) -> ApplyReport {
        execute(plan.actionable, progress: progress)
    }

    /// The executor of one explicit lifecycle run (offboard, cutover, rollback): a journal with a run id of its own
    /// (`journal.jsonl` under the state directory) and `state` as the caller recorded it.
    /// Throws: the journal's error when it cannot be opened.
    public static func explicitRun(
        root: HostRoot,
        settings: Settings,
        runner: any CommandRunner,
        systemdRunning: Bool,
        state: WorkstationState
    ) throws -> (Executor, Journal) {
        let journal = try Journal(root: root, settings: settings, run: UUID().uuidString.lowercased())
        let executor = Executor(
            root: root,
            settings: settings,
            runner: runner,
            journal: journal,
            systemdRunning: systemdRunning,
            state: state
        )
        return (executor, journal)
    }

    /// Runs `changes` whatever their safety class: only for the explicit lifecycle commands (offboard, cutover,
    /// rollback), which build these changes themselves and hold the run lock. Same order, dependency and journal rules.
    public func runExplicit(_ changes: [Change], progress: (String) -> Void = { _ in }) -> ApplyReport {
        execute(changes.filter { $0.action != nil }, progress: progress)
    }

    /// Units enabled in one `systemctl` call at most (systemctl(1) takes many unit names; the batch stays well
    /// under the kernel's argument limit and bounds how much one failure makes the executor retry one by one).
    static let enableBatchSize = 128

    /// Runs `todo` in order, journaling each change. Enabling a unit that no later change depends on is held back
    /// and done at the end for all such units together: every unit file and drop-in is written first, systemd
    /// reloads once, and `systemctl enable --now --no-reload` (or `--root=DIR enable`) takes the units in batches
    /// (`enableBatchSize`). Consecutive `writeFile` changes are written together (`writeFilesTogether`: two
    /// `syncfs` for the group instead of two `fsync`s per file). Consecutive `disableUnit` changes (an offboarding
    /// cut of many people lists them first) run the same way, as `systemctl disable --now --no-reload` in batches,
    /// before the change after them. A batch that fails is retried one unit at a time, so a failure still names its
    /// person and unit and the others in the batch still converge. A run killed before a batch leaves its units as
    /// they were, which the next run plans again.
    private func execute(_ todo: [Change], progress: (String) -> Void) -> ApplyReport {
        var report = ApplyReport()
        var notDone = Set<ResourceID>()
        let dependedOn = Set(todo.flatMap(\.dependsOn))
        var heldBack: [(index: Int, change: Change, name: String)] = []
        var disabling: [(index: Int, change: Change, name: String)] = []
        var writing: [(index: Int, change: Change, path: String, content: Data, mode: UInt32)] = []
        func disableHeld() {
            guard !disabling.isEmpty else { return }
            unitsTogether(
                disabling,
                verb: .disable,
                of: todo.count,
                report: &report,
                notDone: &notDone,
                progress: progress
            )
            disabling = []
        }
        func writeHeld() {
            guard !writing.isEmpty else { return }
            writeFilesTogether(writing, of: todo.count, report: &report, notDone: &notDone, progress: progress)
            writing = []
        }
        var createdAhead = Set<ResourceID>()
        for (i, change) in todo.enumerated() {
            if createdAhead.contains(change.id) { continue }
            if case .disableUnit = change.action {} else { disableHeld() }
            if case .writeFile = change.action,
                !change.dependsOn.contains(where: { d in writing.contains { $0.change.id == d } })
            {
            } else {
                writeHeld()
            }
            if let dep = change.dependsOn.first(where: { notDone.contains($0) }) {
                notDone.insert(change.id)
                report.skipped.append((change, "skipped because \(dep) did not complete"))
                journal?.record(change, result: "skipped", error: "\(dep) did not complete")
                continue
            }
            if case .enableUnit(let name) = change.action, !dependedOn.contains(change.id) {
                heldBack.append((i, change, name))
                continue
            }
            if case .createAccount = change.action {
                // Every account of the run at once (they depend on groups only, all made before the first account);
                // each person's later changes depend on their account and run in their place.
                writeHeld()
                let earlier = Set(todo[..<i].map(\.id))
                let batch = todo.enumerated().dropFirst(i).compactMap {
                    j,
                    c -> (index: Int, change: Change, spec: AccountSpec)? in
                    guard case .createAccount(let spec) = c.action,
                        c.dependsOn.allSatisfy({ earlier.contains($0) && !notDone.contains($0) })
                    else { return nil }
                    return (j, c, spec)
                }
                if batch.count > 1 {
                    createdAhead.formUnion(batch.map(\.change.id))
                    createAccountsTogether(
                        batch,
                        of: todo.count,
                        report: &report,
                        notDone: &notDone,
                        progress: progress
                    )
                    continue
                }
            }
            if case .writeFile(let path, let content, let mode) = change.action {
                writing.append((i, change, path, content, mode))
                continue
            }
            if case .disableUnit(let name) = change.action,
                !change.dependsOn.contains(where: { d in
                    disabling.contains { $0.change.id == d }
                })
            {
                disabling.append((i, change, name))
                continue
            }
            disableHeld()
            runOne(change, index: i, of: todo.count, report: &report, notDone: &notDone, progress: progress)
        }
        disableHeld()
        writeHeld()
        if !heldBack.isEmpty {
            unitsTogether(
                heldBack,
                verb: .enable,
                of: todo.count,
                report: &report,
                notDone: &notDone,
                progress: progress
            )
        }
        if unitFilesDirty && systemdRunning {
            do { try runner.check(["systemctl", "daemon-reload"]) } catch {
                report.notes.append("systemctl daemon-reload failed: \(error)")
            }
        }
        return report
    }

    /// Runs one change: journal, report, state record.
    func runOne(
        _ change: Change,
        index i: Int,
        of count: Int,
        report: inout ApplyReport,
        notDone: inout Set<ResourceID>,
        progress: (String) -> Void
    ) {
        progress("[\(i + 1)/\(count)] \(change.summary)")
        let before = state
        touchedUsers = change.user.map { [$0] } ?? []
        intentRecorded = false
        do {
            try run(change, progress: progress)
            report.applied.append(change)
            journal?.record(change, result: "ok")
        } catch {
            fail(change, error, report: &report, notDone: &notDone)
        }
        if state != before || intentRecorded, let persist = persistAfterChange ?? persist {
            do { try persist(state, touchedUsers) } catch {
                report.notes.append("cannot record state after \(change.id): \(error)")
            }
        }
    }

    func fail(_ change: Change, _ error: Error, report: inout ApplyReport, notDone: inout Set<ResourceID>) {
        let message = "\(change.user.map { "\($0): " } ?? "")\(change.summary): \(error)"
        notDone.insert(change.id)
        report.failed.append((change, message))
        journal?.record(change, result: error is HomeWriteError ? "refused" : "failed", error: "\(error)")
    }

    /// What `unitsTogether` does to its units.
    enum UnitVerb: String {
        case enable, disable
    }

    /// Enables (or disables) units together: for `enable`, one `daemon-reload` first when unit files were written;
    /// then batches of `enableBatchSize` in one `systemctl` call each; a failed batch is retried unit by unit.
    private func unitsTogether(
        _ units: [(index: Int, change: Change, name: String)],
        verb unitVerb: UnitVerb,
        of count: Int,
        report: inout ApplyReport,
        notDone: inout Set<ResourceID>,
        progress: (String) -> Void
    ) {
        if unitVerb == .enable && systemdRunning && unitFilesDirty {
            do {
                try runner.check(["systemctl", "daemon-reload"])
                unitFilesDirty = false
            } catch {
                for u in units { fail(u.change, error, report: &report, notDone: &notDone) }
                return
            }
        }
        // `--no-reload`: for enable, the manager was reloaded above, after the last unit file; without it systemctl
        // reloads the whole manager again after each batch's `.wants/` links (systemctl(1)), seconds each with a
        // thousand units. Removing links (disable) needs no reload at all.
        let verb =
            systemdRunning
            ? ["systemctl", unitVerb.rawValue, "--now", "--no-reload"]
            : ["systemctl", "--root=\(root.directory)", unitVerb.rawValue]
        var start = 0
        while start < units.count {
            let batch = Array(units[start..<min(start + Self.enableBatchSize, units.count)])
            start += batch.count
            progress(
                unitVerb == .disable && batch.count == 1
                    ? "[\(batch[0].index + 1)/\(count)] \(batch[0].change.summary)"
                    : "[\(batch[0].index + 1)-\(batch[batch.count - 1].index + 1)/\(count)] \(unitVerb.rawValue) \(batch.count) unit\(batch.count == 1 ? "" : "s")"
            )
            if batch.count > 1, (try? runner.check(verb + batch.map(\.name))) != nil {
                for u in batch {
                    report.applied.append(u.change)
                    journal?.record(u.change, result: "ok")
                }
                continue
            }
            // One unit, or a batch that failed: each on its own, so the failure names its person and unit.
            for u in batch {
                do {
                    try runner.check(verb + [u.name])
                    report.applied.append(u.change)
                    journal?.record(u.change, result: "ok")
                } catch {
                    fail(u.change, error, report: &report, notDone: &notDone)
                }
            }
        }
    }

    var prefix: [String] { root.isSystem ? [] : ["--prefix", root.directory] }

    func owner(_ user: String) throws -> HomeWriter.Owner {
        guard let p = accounts.entry(user) else { throw ApplyError.noAccount(user) }
        return HomeWriter.Owner(uid: p.uid, gid: p.gid)
    }

    private func run(_ change: Change, progress: (String) -> Void) throws {
        guard let action = change.action else { return }
        switch action {
        case .createGroup(let name):
            // groupadd(8) --system: gid below 1000, so account uids and their private groups' gids stay equal.
            // Not idempotent (exit 9 when the group exists), so observe guards it.
            try intend(nil) { $0.groups.append(name) }
            try runner.check(["groupadd"] + prefix + ["--system", name])
            if !state.createdGroups.contains(name) { state.createdGroups.append(name) }
            settled { $0.groups.removeAll { $0 == name } }
        case .createAccount(let spec):
            // useradd(8): -m copies the skeleton (its links stay links), -U makes the user private group.
            // With --prefix, useradd still reads the host's /etc/skel, so the root's skeleton is named with -k.
            var argv =
                ["useradd"] + prefix + [
                    "-m", "-U", "-u", String(spec.uid), "-d", spec.home, "-s", spec.shell, "-c", spec.comment,
                    "-K", "HOME_MODE=0700",
                ]
            if !root.isSystem { argv += ["-k", root.path("/etc/skel")] }
            if !spec.groups.isEmpty { argv += ["-G", spec.groups.joined(separator: ",")] }
            argv.append(spec.name)
            try intend(spec.name) {
                $0.accounts[spec.name] = .init(uid: spec.uid, created: true)
                $0.accountGroups[spec.name] = spec.groups
            }
            try runner.check(argv)
            state.accounts[spec.name] = .init(uid: spec.uid, created: true)
            state.addedMemberships[spec.name] = spec.groups
            settled {
                $0.accounts[spec.name] = nil
                $0.accountGroups[spec.name] = nil
            }
            // useradd -m leaves a home that already existed as it was (root-owned, 0755 from a restore): take it
            // over like the planner does for an existing account, the directory alone. A home owned by anyone
            // else keeps its owner.
            var st = stat()
            let rootOwned = lstat(root.path(spec.home), &st) == 0 && st.st_mode & S_IFMT == S_IFDIR && st.st_uid == 0
            try homes.secureHome(home: spec.home, owner: try owner(spec.name), chown: rootOwned, mode: 0o700)
        case .addMembership(let user, let group):
            // usermod(8) -a: appends one supplementary group, leaves the others alone.
            try intend(user) { $0.memberships[user, default: []].append(group) }
            try runner.check(["usermod"] + prefix + ["-aG", group, user])
            var added = state.addedMemberships[user] ?? []
            if !added.contains(group) { added.append(group) }
            state.addedMemberships[user] = added
            settled { $0.memberships[user]?.removeAll { $0 == group } }
            recordAccount(user)
        case .createHome(let user, let path):
            let owner = try owner(user)
            try allocateSubordinateIDs(user, uid: Int(owner.uid))
            try makeHome(path, owner: owner)
        case .secureHome(let user, let path, let chownTo, let mode):
            try homes.secureHome(home: path, owner: try owner(user), chown: chownTo != nil, mode: mode_t(mode))
            recordAccount(user)
        case .writeFile(let path, let content, let mode):
            try writeFileAtomically(content, to: root.path(path), mode: mode)
            if path.hasPrefix("/etc/systemd/") { unitFilesDirty = true }
        case .createHomeDirectory(let user, let path, let mode):
            let (home, rel) = try split(user, path)
            try homes.createDirectory(home: home, relative: rel, owner: try owner(user), mode: mode_t(mode))
            recordAccount(user)
        case .createHomeLink(let user, let path, let target):
            let (home, rel) = try split(user, path)
            try homes.createSymlink(home: home, relative: rel, target: target, owner: try owner(user))
        case .enableUnit(let name):
            if systemdRunning {
                if unitFilesDirty {
                    try runner.check(["systemctl", "daemon-reload"])
                    unitFilesDirty = false
                }
                try runner.check(["systemctl", "enable", "--now", name])
            } else {
                try runner.check(["systemctl", "--root=\(root.directory)", "enable", name])
            }
        case .cloneInfraRepo(let spec):
            try withoutActuallyEscaping(progress) { p in
                nonisolated(unsafe) let sink = p
                _ = try InfraCloner(root: root, runner: runner).clone(spec) { sink($0) }
            }
            recordAccount(spec.user)
        case .addIdPGroupMember, .createHomeFile, .createSecretFile, .addMCPServer:
            try runIntegration(action)
        case .createSystemDirectory(let path, let mode):
            try SystemFiles.createDirectory(root.path(path), mode: mode_t(mode))
        case .createSystemLink(let path, let target):
            try SystemFiles.createSymlink(root.path(path), target: target)
        case .grantGroupACL(let path, let group, let perms):
            try ACLAdapter(root: root, runner: runner).grant(path: path, group: group, perms: perms)
        case .tightenHomeFile(let user, let path, let mode):
            let (home, rel) = try split(user, path)
            try homes.tightenFile(home: home, relative: rel, owner: try owner(user), mode: mode_t(mode))
        case .installPackages(let names):
            try PackageAdapter(root: root, runner: runner).install(names)
        // Nothing runs under a sandbox root, so there is nothing to restart, start or reload there.
        case .restartUnit(let name): try runningUnit("try-restart", name)
        case .startUnit(let name): try runningUnit("start", name)
        case .reloadUnit(let name): try runningUnit("try-reload-or-restart", name)
        case .createSystemAccounts(let config):
            try runner.check(["systemd-sysusers"] + (root.isSystem ? [] : ["--root=\(root.directory)"]) + [config])
        case .disableUnit(let name): try lifecycle.disableUnit(name)
        case .endProcesses(let user, let uid): try lifecycle.endProcesses(user, uid: uid)
        case .disableLinger(let user): try lifecycle.disableLinger(user)
        case .restrictLogin(let user, let lock): try lifecycle.restrictLogin(user, lock: lock)
        case .restoreLogin(let user, let unlock, let days):
            try lifecycle.restoreLogin(user, unlock: unlock, expireDays: days)
        case .removeMembership(let user, let group):
            try lifecycle.removeMembership(user, group)
            touchedUsers.insert(user)
            state.addedMemberships[user]?.removeAll { $0 == group }
        case .removeHomeEntry(let user, let path, let onlySymlink):
            try lifecycle.removeHomeEntry(user, path, onlySymlink: onlySymlink)
        case .rewriteHomeFile(let user, let path, let content, let uid, let gid, let mode):
            try lifecycle.rewriteHomeFile(user, path, content, uid: uid, gid: gid, mode: mode)
        case .placeHomeLink(let user, let path, let target, let uid, let gid):
            try lifecycle.placeHomeLink(user, path, target: target, uid: uid, gid: gid)
        case .moveHomeEntryOut(let user, let path, let dir):
            try lifecycle.moveHomeEntryOut(user, path, toDirectory: dir)
        case .archiveHome(let user, let home, let archive):
            try lifecycle.archiveHome(user, home: home, archive: archive)
        case .deleteAccount(let user): try lifecycle.deleteAccount(user)
        case .removeSystemFile(let path):
            if unlink(root.path(path)) != 0 && errno != ENOENT {
                throw FileWriteError(path: root.path(path), operation: "unlink", errno: errno)
            }
            if path.hasPrefix("/etc/systemd/") { unitFilesDirty = true }
            // A unit's drop-in directory (`NAME.d`) that held only this file goes too; rmdir(2) leaves one that
            // holds anything else (ENOTEMPTY), and never follows a link.
            let dir = (path as NSString).deletingLastPathComponent
            if dir.hasPrefix("/etc/systemd/system/") && dir.hasSuffix(".d") && rmdir(root.path(dir)) != 0
                && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT
            {
                throw FileWriteError(path: root.path(dir), operation: "rmdir", errno: errno)
            }
        }
    }

    /// Records (and saves, via `persist`) what a tool is about to do to `user`'s account (nil: host-wide), so a run
    /// killed while it runs still knows.
    func intend(_ user: String?, _ edit: (inout WorkstationState.Intents) -> Void) throws {
        var i = state.intents ?? .init()
        edit(&i)
        state.intents = i
        if let user { touchedUsers.insert(user) }
        try persist?(state, touchedUsers)
        intentRecorded = true
    }

    /// Clears an intent once its tool returned (the caller's state save records the result).
    func settled(_ edit: (inout WorkstationState.Intents) -> Void) {
        guard var i = state.intents else { return }
        edit(&i)
        i.memberships = i.memberships.filter { !$0.value.isEmpty }
        state.intents = i.isEmpty ? nil : i
    }

    /// Records an existing roster account workstation now manages (adopted, not created).
    private func recordAccount(_ user: String) {
        guard state.accounts[user] == nil, let p = accounts.entry(user) else { return }
        touchedUsers.insert(user)
        state.accounts[user] = .init(uid: p.uid, created: false)
    }

    /// Splits a path under the user's home into (home, relative).
    func split(_ user: String, _ path: String) throws -> (String, String) {
        guard let home = accounts.entry(user)?.home else { throw ApplyError.noAccount(user) }
        let prefix = home.hasSuffix("/") ? home : home + "/"
        guard path.hasPrefix(prefix) else { throw ApplyError.outsideHome(user: user, path: path) }
        return (home, String(path.dropFirst(prefix.count)))
    }
}

/// Errors of the apply stage.
public enum ApplyError: Error, CustomStringConvertible {
    case noAccount(String)
    case outsideHome(user: String, path: String)
    case notConverged([Change])

    public var description: String {
        switch self {
        case .noAccount(let u): "account \(u) does not exist (its creation failed or was skipped)"
        case .outsideHome(let u, let p): "\(p) is not under the home of \(u)"
        case .notConverged(let changes):
            "apply did not converge; still pending after apply:\n"
                + changes.map { "  \($0.kind.symbol) \($0.summary)" }.joined(separator: "\n")
        }
    }
}
