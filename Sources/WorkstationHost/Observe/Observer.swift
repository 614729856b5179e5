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
        let nestingHomes = Set(homes.compactMap { Self.enclosingHome(of: $0, in: homes) })
        var run: (home: String, prefix: String, item: Int)?
        for w in paths {
            if let r = run, pathRest(w.path, after: r.prefix) != nil, !nestingHomes.contains(r.home) {
                grouped[r.item].paths.append(w)
            } else if let home = Self.enclosingHome(of: w.path, in: homes) {
                let item: Int
                if let i = itemOfHome[PathKey(home)] {
                    item = i
                } else {
                    item = grouped.count
                    itemOfHome[PathKey(home)] = item
                    grouped.append((home, []))
                }
                grouped[item].paths.append(w)
                run = (home, home + "/", item)
            } else if let last = grouped.indices.last, grouped[last].home == nil, grouped[last].paths.count < 64 {
                grouped[last].paths.append(w)
            } else {
                grouped.append((nil, [w]))
            }
        }
        let workers = grouped.count >= 32 ? Self.readers : 1
        let results = ObservedParts<[(String, PathState)]>(count: workers, empty: [])
        let items = grouped
        let work = { @Sendable (worker: Int) in
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
            results.set(worker, found)
        }
        if workers == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: work) }
        s.paths.reserveCapacity(s.paths.count + paths.count)
        results.merge(into: &s)
    }

    /// Adds every path `Planner.watchedPaths(desired)` names, as `observePaths` would, reading people in parallel:
    /// each person's paths are made and read by the thread that takes that person, those below their own home
    /// in one walk, the others relative to their grandparent directory (opened once per thread).
    public func observeWatched(_ desired: DesiredState, into s: inout HostSnapshot) {
        let planner = Planner(settings: settings)
        observePaths(planner.sharedWatchedPaths(desired), into: &s)
        let homes = Self.regularHomes(s)
        // A home below another home is looked up from that one (without following its owner's links).
        let nesting = homes.compactMap { h in Self.enclosingHome(of: h, in: homes).map { (outer: $0, inner: h) } }
        let nestingHomes = Set(nesting.map(\.outer))
        let nestedHomes = Set(nesting.map(\.inner))
        // A path whose first component no home shares (`/etc/...` beside `/home/...`) lies in no home.
        let homeRoots = Set(homes.map(Self.firstComponent))
        let users = desired.users
        let workers = users.count >= 16 ? Self.readers : 1
        let results = ObservedParts<[[(String, PathState)]]>(count: workers, empty: [])
        let work = { @Sendable (worker: Int) in
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
                let home = withoutTrailingSlash(u.home)
                // Own-home shortcut only where no other home lies below this one (then the longest match decides).
                let ownHome = homes.contains(home) && !nestingHomes.contains(home)
                let prefix = home + "/"
                var walk = ownHome ? HomeWalk(directory: root.path(home)) : nil
                for w in planner.userWatchedPaths(u) {
                    if ownHome, let relative = pathRest(w.path, after: prefix) {
                        add(w.path, walk!.state(relative: String(relative), readContent: w.readContent))
                    } else if ownHome, w.path == home, !nestedHomes.contains(home), let st = walk!.homeState() {
                        add(w.path, st)
                    } else if homeRoots.contains(Self.firstComponent(w.path)),
                        let other = Self.enclosingHome(of: w.path, in: homes)
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
            results.set(worker, found)
        }
        if workers == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: work) }
        s.paths.fill(results.parts, uniquingKeysWith: ObservedPaths.keepContent)
    }

    /// Threads that read a large host: two per core, at most 8 (measured on 2 cores, 4 threads read 1,000 homes
    /// in 37 ms against 58 ms for one: path lookups in the kernel overlap).
    static var readers: Int { min(2 * ProcessInfo.processInfo.activeProcessorCount, 8) }

    /// Homes of regular accounts (uid in `UID_MIN...UID_MAX`, not `/`), without a trailing slash: paths below
    /// them are looked up without following links.
    static func regularHomes(_ s: HostSnapshot) -> Set<String> {
        Set(
            s.passwd.filter { s.uidRange.contains($0.uid) && $0.home.utf8.count > 1 }.map {
                withoutTrailingSlash($0.home)
            }
        )
    }

    /// `/home/alice` -> `/home`; `/srv` -> `/srv`.
    static func firstComponent(_ path: String) -> Substring {
        let u = path.utf8
        guard let slash = u.dropFirst().firstIndex(of: UInt8(ascii: "/")) else { return path[...] }
        return path[..<slash]
    }

    /// The longest of `homes` that `path` lies strictly below, found by looking up each of the path's ancestors
    /// (a hash lookup per path component, so observing stays linear in the number of paths).
    static func enclosingHome(of path: String, in homes: Set<String>) -> String? {
        var end = path.endIndex
        while let slash = path.utf8[..<end].lastIndex(of: UInt8(ascii: "/")) {
            if slash > path.startIndex {
                let ancestor = String(path[..<slash])
                if homes.contains(ancestor) { return ancestor }
            }
            end = slash
        }
        return nil
    }

    /// `lstat(2)` of `home/relative` reached with `openat(2)` and `O_NOFOLLOW` from the home: a user's link on the
    /// way is never followed. When a component on the way is a link or not a directory, the path reads as blocked
    /// (the caller also watches that component and reports it). Content is never read under a home.
    public func homePathState(home: String, relative: String) -> PathState {
        var walk = HomeWalk(directory: root.path(home))
        defer { walk.closeAll() }
        return walk.state(relative: relative)
    }

    /// The kind, permission bits and owner `stat` shows.
    static func pathState(_ st: stat) -> PathState {
        PathState(kind: kind(st.st_mode), mode: UInt32(st.st_mode) & 0o7777, uid: Int(st.st_uid), gid: Int(st.st_gid))
    }

    /// The target of the symbolic link `name` below the directory `dir` (`AT_FDCWD` for a whole path), read with
    /// `readlinkat(2)` (`readlink(2)` directly: FileManager's wrapper costs more than the call); nil when it fails.
    static func linkTarget(_ dir: Int32, _ name: String) -> String? {
        // A target is at most PATH_MAX bytes; the buffer lives on the stack (one per link read, thousands a run).
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX)) { buf in
            let n = readlinkat(dir, name, buf.baseAddress!, buf.count)
            return n >= 0
                ? String(decoding: UnsafeRawBufferPointer(start: buf.baseAddress, count: n), as: UTF8.self) : nil
        }
    }

    static func kind(_ mode: mode_t) -> PathState.Kind {
        switch mode & S_IFMT {
        case S_IFREG: .file
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
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

    /// `lstat(2)` of a host path under the root (the last component is not followed).
    public func pathState(_ hostPath: String, readContent: Bool = false) -> PathState {
        let full = root.path(hostPath)
        var st = stat()
        guard lstat(full, &st) == 0 else { return .absent }
        var result = Self.pathState(st)
        if result.kind == .symlink {
            result.linkTarget = Self.linkTarget(AT_FDCWD, full)
        } else if result.kind == .file && readContent && st.st_size <= 4 << 20 {
            result.content = Self.readRegularFile(full, expected: st)
        }
        return result
    }

    /// `/etc/systemd/system/x.d/file` -> (`/etc/systemd/system`, `x.d/file`); `/home/alice` -> (`/`, `home/alice`).
    static func splitGrandparent(_ path: String) -> (String, String) {
        // By byte offset: a Character-wise search walks grapheme clusters (and a combining mark after a '/' fuses
        // with it), many times the cost for an answer the kernel would not give.
        func offsets(_ b: UnsafeBufferPointer<UInt8>) -> (last: Int, parent: Int) {
            var last = b.count - 1
            while last >= 0 && b[last] != UInt8(ascii: "/") { last -= 1 }
            var parent = last - 1
            while parent >= 0 && b[parent] != UInt8(ascii: "/") { parent -= 1 }
            return (last, parent)
        }
        let u = path.utf8
        let (last, parent) = u.withContiguousStorageIfAvailable(offsets) ?? Array(u).withUnsafeBufferPointer(offsets)
        guard last > 0, parent >= 0 else { return ("/", String(path.drop { $0 == "/" })) }
        let at = { (offset: Int) in u.index(u.startIndex, offsetBy: offset) }
        // `/srv//f`: the slash found is the second of two; the relative part must not start with '/', or openat
        // would ignore the directory and read the host's own `/f`.
        var relative = path[at(parent + 1)...]
        while relative.utf8.first == UInt8(ascii: "/") {
            relative = relative[relative.utf8.index(after: relative.startIndex)...]
        }
        return (parent == 0 ? "/" : String(path[..<at(parent)]), String(relative))
    }

    /// `pathState` of `relative` below the directory `dir` (an open descriptor): `fstatat(2)` without
    /// following the last component, `readlinkat(2)`, and the content through `openat(2)`; the same answers as for
    /// the whole path, since `dir` was reached the way the whole path's lookup would reach it.
    func pathState(in dir: Int32, _ relative: String, readContent: Bool) -> PathState {
        var st = stat()
        if readContent {
            // Files whose content is read are root's (derived files, drop-ins under /etc): opened straight away,
            // without following a link or blocking, and `fstat` on what was opened is the observation.
            let fd = openat(dir, relative, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            if fd >= 0 {
                defer { close(fd) }
                guard fstat(fd, &st) == 0 else { return .absent }
                var result = Self.pathState(st)
                if result.kind == .file && st.st_size <= 4 << 20 {
                    result.content = Self.readToEnd(fd: fd, size: Int(st.st_size))
                }
                return result
            }
            if errno == ENOENT || errno == ENOTDIR { return .absent }
            // ELOOP (a link) and anything else: looked at without opening, below.
        }
        guard fstatat(dir, relative, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
        var result = Self.pathState(st)
        if result.kind == .symlink {
            result.linkTarget = Self.linkTarget(dir, relative)
        }
        return result
    }

    /// The bytes of the regular file `lstat` just saw at `path`: opened without following a link and without
    /// blocking, and read only when `fstat(2)` shows the same regular file (device and inode), so a path swapped
    /// for a link, FIFO or device in between is not read. nil when it cannot be opened or is no longer that file.
    static func readRegularFile(_ path: String, expected: stat) -> Data? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readRegularFile(fd: fd, expected: expected)
    }

    /// `readRegularFile(_:expected:)` of a file already opened (not closed here).
    static func readRegularFile(fd: Int32, expected: stat) -> Data? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_dev == expected.st_dev,
            st.st_ino == expected.st_ino
        else { return nil }
        return readToEnd(fd: fd, size: Int(st.st_size))
    }

    /// The bytes from `fd`'s offset to its end: one read for `size` (what `fstat` gave) plus a byte, so a file that
    /// grew meanwhile is read on to its end. nil on a read error.
    static func readToEnd(fd: Int32, size: Int) -> Data? {
        var data = Data(count: size + 1)
        var filled = 0
        while true {
            if filled == data.count { data.count += 4096 }
            let n = data.withUnsafeMutableBytes { buf in read(fd, buf.baseAddress! + filled, buf.count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            filled += n
            if filled < data.count { break }  // a short read of a regular file: its end
        }
        data.count = filled
        return data
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

/// Paths outside homes, looked up relative to their grandparent directory, each directory opened once: a short
/// walk in the kernel instead of the whole path (under a root, every path is long). One per thread.
struct GrandparentDirectories {
    let observer: Observer
    /// By bytes: two spellings String takes as equal are two directories.
    private var open: [PathKey: Int32] = [:]

    init(observer: Observer) { self.observer = observer }

    mutating func state(_ w: WatchedPath) -> PathState {
        let (dir, relative) = Observer.splitGrandparent(w.path)
        let fd: Int32
        if let known = open[PathKey(dir)] {
            fd = known
        } else {
            fd = Glibc.open(observer.root.path(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            open[PathKey(dir)] = fd
        }
        return fd >= 0 ? observer.pathState(in: fd, relative, readContent: w.readContent) : .absent
    }

    mutating func closeAll() {
        for fd in open.values where fd >= 0 { close(fd) }
        open = [:]
    }
}

/// Each worker's observations, one slot per worker (`observePaths`, `observeWatched`).
private final class ObservedParts<Part>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Part]
    init(count: Int, empty: Part) { slots = Array(repeating: empty, count: count) }
    func set(_ worker: Int, _ found: Part) { lock.withLock { slots[worker] = found } }
    var parts: [Part] { lock.withLock { slots } }
}

extension ObservedParts where Part == [(String, PathState)] {
    /// Adds every observation to `s`; a path observed twice keeps the observation with content, if any.
    func merge(into s: inout HostSnapshot) {
        for part in parts { s.paths.merge(part, uniquingKeysWith: ObservedPaths.keepContent) }
    }
}

/// How observations of one path combine: the one with content, if any (else the later one).
enum ObservedPaths {
    @Sendable static func keepContent(_ old: PathState, _ new: PathState) -> PathState {
        new.content != nil || old.content == nil ? new : old
    }
}

/// Paths below one home, looked up without following links: every directory on the way is opened with
/// `openat(2)` and `O_NOFOLLOW | O_DIRECTORY` from its parent, starting at the home (`open(2)`), and kept open
/// for the next path of the same home until `closeAll()`. Never reads content.
struct HomeWalk {
    private enum Directory {
        case open(Int32)
        /// A component is missing.
        case absent
        /// A component is a symlink or not a directory (or cannot be opened): never followed.
        case blocked
    }

    private let directory: String
    /// Opened directories by relative path ("" is the home itself).
    private var directories: [PathKey: Directory] = [:]

    /// - Parameter directory: the home's path on the host (under the root).
    init(directory: String) { self.directory = directory }

    /// Paths already looked up (a home has a dozen watched paths; a few are watched twice).
    private var seen: [PathKey: PathState] = [:]

    /// The state of `relative` (no `.` or `..` components; those read as absent).
    /// With `readContent`, a regular file's bytes (at most 4 MiB) are read too, through `openat(2)` with
    /// `O_NOFOLLOW | O_NONBLOCK` from the parent directory the walk opened (never a link, never blocking on a FIFO),
    /// and `fstat` on what was opened must be that same regular file.
    mutating func state(relative: String, readContent: Bool = false) -> PathState {
        let key = PathKey(relative)
        if let known = seen[key], !readContent || known.kind != .file || known.content != nil { return known }
        let found = lookUp(relative: relative, readContent: readContent)
        seen[key] = found
        return found
    }

    private mutating func lookUp(relative: String, readContent: Bool) -> PathState {
        guard let (parent, last) = Self.split(Substring(relative)) else { return .absent }
        switch dir(parent) {
        case .absent: return .absent
        case .blocked:
            var blocked = PathState(kind: .other)
            blocked.blocked = true
            return blocked
        case .open(let fd):
            var st = stat()
            let name = String(last)
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
            var result = Observer.pathState(st)
            result.linkCount = Int(st.st_nlink)
            if result.kind == .symlink {
                result.linkTarget = Observer.linkTarget(fd, name)
            }
            if readContent && result.kind == .file && st.st_size <= 4 << 20 {
                let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                if file >= 0 {
                    defer { close(file) }
                    var opened = stat()
                    if fstat(file, &opened) == 0, opened.st_ino == st.st_ino, opened.st_dev == st.st_dev,
                        opened.st_mode & S_IFMT == S_IFREG
                    {
                        result.content = Observer.readToEnd(fd: file, size: Int(opened.st_size))
                    }
                }
            }
            return result
        }
    }

    /// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`). nil when a component is empty, `.` or `..` (read as absent).
    private static func split(_ relative: Substring) -> (Substring, Substring)? {
        // By byte offset over the contiguous bytes of a native string: a walk with UTF8View indices costs ten times
        // as much, and this runs for every path below every home.
        func offsets(_ b: UnsafeBufferPointer<UInt8>) -> (end: Int, slash: Int) {
            var end = b.count
            while end > 0 && b[end - 1] == UInt8(ascii: "/") { end -= 1 }
            var slash = end - 1
            while slash >= 0 && b[slash] != UInt8(ascii: "/") { slash -= 1 }
            return (end, slash)
        }
        let u = relative.utf8
        let (end, slash) = u.withContiguousStorageIfAvailable(offsets) ?? Array(u).withUnsafeBufferPointer(offsets)
        let at = { (offset: Int) in u.index(u.startIndex, offsetBy: offset) }
        let name = relative[at(slash + 1)..<at(end)]
        let parent = relative[u.startIndex..<at(max(slash, 0))]
        let n = name.utf8
        guard !n.isEmpty, !n.allSatisfy({ $0 == UInt8(ascii: ".") }) || n.count > 2 else { return nil }
        return (parent, name)
    }

    /// The home as its own directory was opened (`fstat(2)` of the descriptor: `lstat` of the home, since
    /// `O_NOFOLLOW` refused a link); nil when it is not a directory that opens (look it up another way).
    mutating func homeState() -> PathState? {
        guard case .open(let fd) = dir(""[...]) else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return Observer.pathState(st)
    }

    /// The directory at `relative` below the home (`` is the home), opened once.
    private mutating func dir(_ relative: Substring) -> Directory {
        let key = PathKey(String(relative))
        if let known = directories[key] { return known }
        let found: Directory
        if !relative.isEmpty {
            guard let (parent, name) = Self.split(relative) else {
                directories[key] = .absent
                return .absent
            }
            switch dir(parent) {
            case .absent: found = .absent
            case .blocked: found = .blocked
            case .open where seen[key]?.kind == .absent:
                found = .absent  // looked up a moment ago (`~/.kube` before `~/.kube/config`)
            case .open(let parent):
                let fd = openat(parent, String(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                // ENOENT: truly absent. A symlink or a file on the way: blocked, never followed.
                found = fd >= 0 ? .open(fd) : (errno == ENOENT ? .absent : .blocked)
            }
        } else {
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            found = fd >= 0 ? .open(fd) : .absent
        }
        directories[key] = found
        return found
    }

    /// Closes every directory opened.
    mutating func closeAll() {
        for case .open(let fd) in directories.values { close(fd) }
        directories = [:]
    }
}
