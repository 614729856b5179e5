import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads the host into a `HostSnapshot`. Read-only, and spawns no process: everything comes from files
/// (`passwd(5)`, `group(5)`, `shadow(5)`, `login.defs(5)`, unit symlinks, `lstat(2)`).
public struct Observer: Sendable {
    public let root: HostRoot
    public let settings: Settings

    public init(root: HostRoot, settings: Settings) {
        self.root = root
        self.settings = settings
    }

    /// The account databases, state and unit enablement: what `desire` needs.
    /// - Throws: `ObserveError.unreadable` when the state file exists but does not parse.
    public func observeBase() throws -> HostSnapshot {
        var s = try observeAccountsAndState()
        s.paths[settings.derived.dispatch] = observeDispatch()
        return s
    }

    /// The uids named by the offboarding archives in `offboard.backup_directory`
    /// (`OffboardingRecord.Archive.retiredUid(fromFileName:)`), sorted; empty when the directory is absent.
    public func retiredUidsFromArchives() -> [Int] {
        let names =
            (try? FileManager.default.contentsOfDirectory(atPath: root.path(settings.offboard.backupDirectory))) ?? []
        return Set(names.compactMap(OffboardingRecord.Archive.retiredUid(fromFileName:))).sorted()
    }

    /// `observeBase` without dispatch.json.
    func observeAccountsAndState() throws -> HostSnapshot {
        var s = HostSnapshot()
        s.passwd = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data())
        s.groups = AccountDatabase.group(root.read("/etc/group") ?? Data())
        s.shadow = AccountDatabase.shadow(root.read("/etc/shadow") ?? Data())
        let loginDefs = root.read("/etc/login.defs")
        s.uidRange = AccountDatabase.uidRange(loginDefs: loginDefs)
        s.systemGidRange = AccountDatabase.systemGidRange(loginDefs: loginDefs)
        s.state = try StateStore(root: root, settings: settings).load()
        // The retirement outlives state.json: every archive's name carries its uid.
        for uid in retiredUidsFromArchives() where !s.state.retiredUids.contains(uid) {
            s.state.retiredUids.append(uid)
        }
        s.enabledUnits = enabledUnits()
        s.systemdRunning = root.isSystem && FileManager.default.fileExists(atPath: "/run/systemd/system")
        s.memory = ProcReader(root: root).memory()
        if s.systemdRunning { s.activeUnits = activeUnits() }
        return s
    }

    /// dispatch.json as it is now, with its bytes (decoded only where a reader needs its map: `desire` when a
    /// person's port is not on record, the lockout guard when the file changes).
    public func observeDispatch() -> PathState {
        pathState(settings.derived.dispatch, readContent: true)
    }

    /// Adds the watched paths to a snapshot. A path inside the home of a regular account (uid in
    /// `UID_MIN...UID_MAX`) is looked up without following any link below the home (`homePathState`); the paths
    /// of one home share one walk, so each directory on the way is opened once per home, not once per path.
    public func observePaths(_ paths: [WatchedPath], into s: inout HostSnapshot) {
        let homes = Self.regularHomes(s)
        // Work items: the paths of one home (one walk), or a run of other paths. A path watched twice is read
        // twice (cheaply: a home walk keeps what it read), and its content is kept if either watch asked for it.
        var grouped: [(home: String?, paths: [WatchedPath])] = []
        // Keyed by bytes: two spellings of one name that String takes as equal are two directories on disk.
        var itemOfHome: [PathKey: Int] = [:]
        // Paths come in runs per person: while a path is below the home just matched, and no other home lies
        // below that one, it belongs to the same home without a lookup.
        let nestingHomes = Set(homes.compactMap { $0.nearestAncestor(in: homes) })
        var run: (home: HostPath, prefix: String, item: Int)?
        for w in paths {
            if let r = run, pathRest(w.path, after: r.prefix) != nil, !nestingHomes.contains(r.home) {
                grouped[r.item].paths.append(w)
            } else if let found = HostPath(w.path).nearestAncestor(in: homes) {
                let home = found.string
                let item: Int
                if let i = itemOfHome[PathKey(home)] {
                    item = i
                } else {
                    item = grouped.count
                    itemOfHome[PathKey(home)] = item
                    grouped.append((home, []))
                }
                grouped[item].paths.append(w)
                run = (found, home + "/", item)
            } else if let last = grouped.indices.last, grouped[last].home == nil, grouped[last].paths.count < 64 {
                grouped[last].paths.append(w)
            } else {
                grouped.append((nil, [w]))
            }
        }
        let workers = grouped.count >= 32 ? Self.readers : 1
        let items = grouped
        let parts = parallelMap(count: workers) { worker in
            var found: [(String, PathState)] = []
            for i in stride(from: worker, to: items.count, by: workers) {
                let item = items[i]
                if let home = item.home {
                    var walk = HomeWalk(directory: root.path(home))
                    for w in item.paths {
                        found.append(
                            (
                                w.path,
                                walk.state(
                                    relative: String(pathRest(w.path, after: home + "/") ?? ""),
                                    readContent: w.readContent
                                )
                            )
                        )
                    }
                    walk.closeAll()
                } else {
                    var dirs = GrandparentDirectories(observer: self)
                    for w in item.paths { found.append((w.path, dirs.state(w))) }
                    dirs.closeAll()
                }
            }
            return found
        }
        s.paths.reserveCapacity(s.paths.count + paths.count)
        for part in parts { s.paths.merge(part, uniquingKeysWith: ObservedPaths.keepContent) }
    }

    /// Adds every path `Planner.watchedPaths(desired)` names, as `observePaths` would, reading people in parallel:
    /// each person's paths are made and read by the thread that takes that person, those below their own home
    /// in one walk, the others relative to their grandparent directory (opened once per thread).
    public func observeWatched(_ desired: DesiredState, into s: inout HostSnapshot) {
        let planner = Planner(settings: settings)
        observePaths(planner.sharedWatchedPaths(desired), into: &s)
        let homes = Self.regularHomes(s)
        // A home below another home is looked up from that one (without following its owner's links).
        let nesting = homes.compactMap { h in h.nearestAncestor(in: homes).map { (outer: $0, inner: h) } }
        let nestingHomes = Set(nesting.map(\.outer))
        let nestedHomes = Set(nesting.map(\.inner))
        // A path whose first component no home shares (`/etc/...` beside `/home/...`) lies in no home.
        let homeRoots = Set(homes.map(\.firstComponent))
        let users = desired.users
        let workers = users.count >= 16 ? Self.readers : 1
        let parts = parallelMap(count: workers) { worker in
            // Sorted by shard as the paths are read, so the shards fill in parallel afterwards (`PathTable.fill`).
            var found = Array(repeating: [(String, PathState)](), count: PathTable.shardCount)
            for i in found.indices {
                found[i].reserveCapacity((users.count / workers + 1) * 16 / PathTable.shardCount + 8)
            }
            func add(_ path: String, _ st: PathState) { found[PathTable.shard(of: path)].append((path, st)) }
            var dirs = GrandparentDirectories(observer: self)
            defer { dirs.closeAll() }
            for i in stride(from: worker, to: users.count, by: workers) {
                let u = users[i]
                let homePath = HostPath(u.home).withoutTrailingSlash
                let home = homePath.string
                // Own-home shortcut only where no other home lies below this one (then the longest match decides).
                let ownHome = homes.contains(homePath) && !nestingHomes.contains(homePath)
                let prefix = home + "/"
                var walk = ownHome ? HomeWalk(directory: root.path(home)) : nil
                for w in planner.userWatchedPaths(u) {
                    if ownHome, let relative = pathRest(w.path, after: prefix) {
                        add(w.path, walk!.state(relative: String(relative), readContent: w.readContent))
                    } else if ownHome, HostPath(w.path) == homePath, !nestedHomes.contains(homePath),
                        let st = walk!.homeState()
                    {
                        add(w.path, st)
                    } else if homeRoots.contains(HostPath(w.path).firstComponent),
                        let other = HostPath(w.path).nearestAncestor(in: homes)?.string
                    {
                        add(
                            w.path,
                            homePathState(home: other, relative: String(pathRest(w.path, after: other + "/") ?? ""))
                        )
                    } else {
                        add(w.path, dirs.state(w))
                    }
                }
                walk?.closeAll()
            }
            return found
        }
        s.paths.fill(parts, uniquingKeysWith: ObservedPaths.keepContent)
    }

    /// Threads that read a large host: two per core, at most 8 (measured on 2 cores, 4 threads read 1,000 homes
    /// in 37 ms against 58 ms for one: path lookups in the kernel overlap).
    static var readers: Int { min(2 * ProcessInfo.processInfo.activeProcessorCount, 8) }

    /// Homes of regular accounts (uid in `UID_MIN...UID_MAX`, not `/`), without a trailing slash: paths below
    /// them are looked up without following links.
    static func regularHomes(_ s: HostSnapshot) -> Set<HostPath> {
        Set(
            s.passwd.filter { s.uidRange.contains($0.uid) && $0.home.utf8.count > 1 }.map {
                HostPath($0.home).withoutTrailingSlash
            }
        )
    }

    /// `lstat(2)` of `home/relative` reached with `openat(2)` and `O_NOFOLLOW` from the home: a user's link on the
    /// way is never followed. When a component on the way is a link or not a directory, the path reads as blocked
    /// (the caller also watches that component and reports it). Content is never read under a home.
    public func homePathState(home: String, relative: String) -> PathState {
        var walk = HomeWalk(directory: root.path(home))
        defer { walk.closeAll() }
        return walk.state(relative: relative)
    }

    /// The full pipeline's observe stage: base, desire, then the paths the desired state names.
    /// - Parameter base: `observeBase()` taken earlier for the same settings; nil: taken now.
    public func observe(roster: Roster, base: HostSnapshot? = nil) throws -> (HostSnapshot, DesiredState) {
        var snap = try base ?? observeBase()
        var desired = desire(roster: roster, settings: settings, snapshot: snap)
        desired.diagnostics += settingsPathDiagnostics()
        observeWatched(desired, into: &snap)
        return (snap, desired)
    }

    /// Units systemd is running now. systemd links `/run/systemd/units/invocation:<unit>` to the unit's invocation
    /// id when it starts and removes the link when the unit goes inactive or fails (systemd `src/core/unit.c`,
    /// `unit_export_invocation_id`; journald reads it); a file read, so observe still spawns nothing.
    func activeUnits() -> Set<String> {
        let prefix = "invocation:"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root.path("/run/systemd/units"))) ?? []
        return Set(entries.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
    }

    /// Names of unit files linked from any `*.wants/` or `*.requires/` directory under `/etc/systemd/system`
    /// (what `systemctl enable` creates, `systemctl(1)`).
    func enabledUnits() -> Set<String> {
        let dir = root.path("/etc/systemd/system")
        var out = Set<String>()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return out }
        for e in entries where e.hasSuffix(".wants") || e.hasSuffix(".requires") {
            for unit in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/" + e)) ?? [] { out.insert(unit) }
        }
        return out
    }
}

/// Errors reading the host.
public enum ObserveError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        }
    }
}

/// How observations of one path combine: the one with content, if any (else the later one).
enum ObservedPaths {
    @Sendable static func keepContent(_ old: PathState, _ new: PathState) -> PathState {
        new.content != nil || old.content == nil ? new : old
    }
}
