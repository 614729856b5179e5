import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// `workstation setup-host`: observe the machine-wide layers, plan, apply under the run lock, verify.
/// The same pipeline and safety classes as `apply`; observing reads files only and spawns nothing.
public enum SetupHostEngine {
    /// Reads what setup-host needs: the core snapshot (accounts, groups, state, secret files of managed users),
    /// the managed files, skel, profile script, reconcile units, the dpkg database and how each inherited item
    /// of the config base is reached.
    /// - Throws: `ObserveError` when the state file does not parse.
    public static func observe(
        _ inputs: Inputs,
        root: HostRoot
    ) throws -> (HostSnapshot, DesiredState, SetupHostObservation) {
        let settings = inputs.settings
        let observer = Observer(root: root, settings: settings)
        var snap = try observer.observeBase()
        var desired = desire(roster: inputs.roster, settings: settings, snapshot: snap)
        desired.diagnostics += observer.settingsPathDiagnostics()
        let planner = Planner(settings: settings)
        observer.observePaths(
            desired.users.flatMap { [WatchedPath($0.home)] + planner.secretFileWatchedPaths($0) },
            into: &snap
        )

        var host = SetupHostObservation()
        for w in planner.setupHostWatchedPaths() {
            host.files[w.path] = observer.pathState(w.path, readContent: w.readContent)
        }
        let guidancePath = joinPath(settings.configBase, settings.setupHost.guidanceFile)
        host.guidance = readRegularFile(root.path(guidancePath))
        host.displayPaths[guidancePath] = root.path(guidancePath)
        let dropInDir = (settings.setupHost.managedDropInPath as NSString).deletingLastPathComponent
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: root.path(dropInDir))) ?? []).sorted()
        where name.hasSuffix(".json") {
            let p = joinPath(dropInDir, name)
            guard p != settings.setupHost.managedDropInPath, let data = readRegularFile(root.path(p)) else { continue }
            host.otherDropIns[p] = data
            host.displayPaths[p] = root.path(p)
        }
        host.displayPaths[settings.setupHost.managedSettingsPath] = root.path(settings.setupHost.managedSettingsPath)
        collectSkel(root, settings.setupHost.skel, depth: 0, into: &host)
        if let status = root.read("/var/lib/dpkg/status") {
            host.installedPackages = PackageAdapter.installed(status: status)
        }
        // What children read: each inherited item, and the org guidance (the managed CLAUDE.md links to it).
        var items = settings.inheritedItems.map { joinPath(settings.configBase, $0) }
        if host.guidance != nil { items.append(guidancePath) }
        host.chains = items.map { ReachResolver(root: root).chain($0) }
        // A config base in an admin's home: the credential files of that home, which a grant opening it could expose.
        if let owner = settings.homeOwner(of: settings.configBase, in: snap) {
            host.baseHome = owner.home
            for rel in settings.homeSecretFiles + wellKnownSecretFiles {
                host.files[joinPath(owner.home, rel)] = observer.pathState(joinPath(owner.home, rel))
            }
        }
        host.canInstallPackages = root.isSystem
        return (snap, desired, host)
    }

    /// Observes and plans. Reads only.
    /// - Throws: `ValidationFailure` for roster problems only the host shows and for secret-guard findings
    ///   (machine-wide content carrying a secret): nothing may change then.
    public static func plan(_ inputs: Inputs, root: HostRoot, options: SetupHostOptions) throws -> (Plan, HostSnapshot)
    {
        let (snap, desired, host) = try observe(inputs, root: root)
        if !desired.diagnostics.isEmpty { throw ValidationFailure(desired.diagnostics) }
        let (plan, guard_) = Planner(settings: inputs.settings).setupHostPlan(
            desired: desired,
            observed: snap,
            host: host,
            options: options
        )
        if !guard_.isEmpty { throw ValidationFailure(guard_) }
        return (plan, snap)
    }

    /// Applies the plan's additive, derived and tighten changes under the run lock, journaling each, records the
    /// machine-wide files it wrote in state (so they are regenerated, never mistaken for foreign ones), then plans
    /// again to verify.
    /// - Throws: `LockError.busy`, `ValidationFailure` (secret guard: nothing changed), state I/O errors.
    public static func apply(
        _ inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        options: SetupHostOptions,
        progress: (String) -> Void = { _ in }
    ) throws -> ApplyOutcome {
        // The secret guard runs before the lock is taken, so a refused run leaves not even a lock file behind.
        _ = try Self.plan(inputs, root: root, options: options)
        let lock = try RunLock(root: root, settings: inputs.settings, timeout: inputs.settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let (plan, snapshot) = try Self.plan(inputs, root: root, options: options)
        if !plan.refusals.isEmpty { throw RefusedError(plan: plan) }
        var report = ApplyReport()
        var state = snapshot.state
        if !plan.isEmpty {
            let journal = try Journal(root: root, settings: inputs.settings, run: UUID().uuidString.lowercased())
            let executor = Executor(
                root: root,
                settings: inputs.settings,
                runner: runner,
                journal: journal,
                systemdRunning: snapshot.systemdRunning,
                state: state
            )
            report = executor.apply(plan, progress: progress)
            state = executor.state
            var owned = state.ownedFiles ?? []
            for c in report.applied {
                if case .writeFile(let path, _, _) = c.action, !owned.contains(path) { owned.append(path) }
            }
            state.ownedFiles = owned.isEmpty ? nil : owned
        }
        let (verification, _) = try Self.plan(inputs, root: root, options: options)
        if state != snapshot.state {
            try StateStore(root: root, settings: inputs.settings).save(state)
        }
        return ApplyOutcome(
            plan: plan,
            report: report,
            verification: verification,
            processesSpawned: runner.spawned,
            observed: nil
        )
    }

    /// A regular file's bytes (at most 1 MiB), opened without following a link in the last component.
    static func readRegularFile(_ full: String) -> Data? {
        let fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= 1 << 20 else { return nil }
        return Observer.readRegularFile(fd: fd, expected: st)
    }

    /// Regular files under the skel directory, without following links, to depth 8 and at most 2000 files.
    static func collectSkel(_ root: HostRoot, _ dir: String, depth: Int, into host: inout SetupHostObservation) {
        guard depth < 8, host.skelFiles.count < 2000 else { return }
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: root.path(dir))) ?? []).sorted() {
            let p = joinPath(dir, name)
            var st = stat()
            guard lstat(root.path(p), &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: collectSkel(root, p, depth: depth + 1, into: &host)
            case S_IFREG:
                if let data = readRegularFile(root.path(p)) {
                    host.skelFiles[p] = data
                    host.displayPaths[p] = root.path(p)
                }
            default: break
            }
        }
    }
}

/// Resolves a host path the way the kernel does for a lookup (following symlinks, at most 40), recording every
/// directory searched and the object reached, with modes, owners and access ACLs (`lstat(2)`, `readlink(2)`,
/// `lgetxattr(2)` of `system.posix_acl_access`). Reads only; spawns nothing.
public struct ReachResolver: Sendable {
    public let root: HostRoot
    public init(root: HostRoot) { self.root = root }

    public func chain(_ item: String) -> ReachChain {
        var entries: [TraversedEntry] = []
        func record(_ path: String, need: UInt8, final: Bool = false) -> Bool {
            var st = stat()
            guard lstat(root.path(path), &st) == 0 else { return false }
            let acl = readACL(root.path(path))
            let e = TraversedEntry(
                path: path,
                kind: Observer.kind(st.st_mode),
                mode: UInt32(st.st_mode) & 0o7777,
                uid: Int(st.st_uid),
                gid: Int(st.st_gid),
                acl: acl,
                need: need
            )
            if let i = entries.firstIndex(where: { $0.path == path }) {
                entries[i].need |= need
            } else {
                entries.append(e)
            }
            return true
        }
        var pending = item.split(separator: "/").map(String.init)
        var current = "/"
        var hops = 0
        while !pending.isEmpty {
            let comp = pending.removeFirst()
            if comp == "." { continue }
            _ = record(current, need: 1)
            if comp == ".." {
                current = (current as NSString).deletingLastPathComponent
                continue
            }
            let next = joinPath(current, comp)
            var st = stat()
            guard lstat(root.path(next), &st) == 0 else {
                return ReachChain(item: item, entries: entries, problem: "is missing (nothing at \(next))")
            }
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                hops += 1
                guard hops <= 40,
                    let target = try? FileManager.default.destinationOfSymbolicLink(atPath: root.path(next))
                else {
                    return ReachChain(
                        item: item,
                        entries: entries,
                        problem: "cannot be resolved (a symlink loop at \(next))"
                    )
                }
                if target.hasPrefix("/") { current = "/" }
                pending = target.split(separator: "/").map(String.init) + pending
            case S_IFDIR:
                current = next
            default:
                if !pending.isEmpty {
                    return ReachChain(
                        item: item,
                        entries: entries,
                        problem: "is not reachable: \(next) is not a directory"
                    )
                }
                current = next
            }
        }
        var st = stat()
        _ = lstat(root.path(current), &st)
        _ = record(current, need: st.st_mode & S_IFMT == S_IFDIR ? 5 : 4)
        return ReachChain(item: item, entries: entries)
    }

    func readACL(_ full: String) -> [ACLEntry] {
        extendedAttribute(path: full, "system.posix_acl_access").flatMap(ACLEntry.decode) ?? []
    }
}
