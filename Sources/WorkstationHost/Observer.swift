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
        var s = HostSnapshot()
        s.passwd = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data())
        s.groups = AccountDatabase.group(root.read("/etc/group") ?? Data())
        s.shadow = AccountDatabase.shadow(root.read("/etc/shadow") ?? Data())
        s.uidRange = AccountDatabase.uidRange(loginDefs: root.read("/etc/login.defs"))
        s.state = try StateStore(root: root, settings: settings).load()
        s.enabledUnits = enabledUnits()
        s.systemdRunning = root.isSystem && FileManager.default.fileExists(atPath: "/run/systemd/system")
        s.memory = ProcReader(root: root).memory()
        if s.systemdRunning { s.activeUnits = activeUnits() }
        // The existing dispatch.json is needed to adopt live ports.
        s.paths[settings.derived.dispatch] = pathState(settings.derived.dispatch, readContent: true)
        return s
    }

    /// Adds the watched paths to a snapshot. A path inside the home of a regular account (uid in
    /// `UID_MIN...UID_MAX`) is looked up without following any link below the home (`homePathState`).
    public func observePaths(_ paths: [WatchedPath], into s: inout HostSnapshot) {
        let homes = s.passwd.filter { s.uidRange.contains($0.uid) && $0.home.count > 1 }.map { $0.home.hasSuffix("/") ? String($0.home.dropLast()) : $0.home }
        for w in paths {
            if let home = homes.filter({ w.path.hasPrefix($0 + "/") }).max(by: { $0.count < $1.count }) {
                s.paths[w.path] = homePathState(home: home, relative: String(w.path.dropFirst(home.count + 1)))
            } else {
                s.paths[w.path] = pathState(w.path, readContent: w.readContent)
            }
        }
    }

    /// `lstat(2)` of `home/relative` reached with `openat(2)` and `O_NOFOLLOW` from the home: a user's link on the
    /// way is never followed. When a component on the way is a link or not a directory, the path reads as absent
    /// (the caller also watches that component and reports it). Content is never read under a home.
    public func homePathState(home: String, relative: String) -> PathState {
        var fd = open(root.path(home), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return .absent }
        defer { close(fd) }
        let parts = relative.split(separator: "/").map(String.init)
        guard let last = parts.last, !parts.contains(".."), !parts.contains(".") else { return .absent }
        for comp in parts.dropLast() {
            let next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                // ENOENT: truly absent. A symlink or file on the way: blocked, never followed.
                if errno == ENOENT { return .absent }
                var blocked = PathState(kind: .other)
                blocked.blocked = true
                return blocked
            }
            close(fd)
            fd = next
        }
        var st = stat()
        guard fstatat(fd, last, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
        let kind = Self.kind(st.st_mode)
        var result = PathState(kind: kind, mode: UInt32(st.st_mode) & 0o7777, uid: Int(st.st_uid), gid: Int(st.st_gid))
        result.linkCount = Int(st.st_nlink)
        if kind == .symlink {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(fd, last, &buf, buf.count - 1)
            if n >= 0 { result.linkTarget = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return result
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
    public func observe(roster: Roster) throws -> (HostSnapshot, DesiredState) {
        var snap = try observeBase()
        let desired = desire(roster: roster, settings: settings, snapshot: snap)
        observePaths(Planner(settings: settings).watchedPaths(desired), into: &snap)
        return (snap, desired)
    }

    /// `lstat(2)` of a host path under the root (the last component is not followed).
    public func pathState(_ hostPath: String, readContent: Bool = false) -> PathState {
        let full = root.path(hostPath)
        var st = stat()
        guard lstat(full, &st) == 0 else { return .absent }
        let kind: PathState.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        var result = PathState(kind: kind, mode: UInt32(st.st_mode) & 0o7777, uid: Int(st.st_uid), gid: Int(st.st_gid))
        if kind == .symlink {
            // readlink(2) directly: FileManager's wrapper costs more than the system call, once per watched link.
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(full, &buf, buf.count - 1)
            result.linkTarget = n >= 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        } else if kind == .file && readContent && st.st_size <= 4 << 20 {
            result.content = FileManager.default.contents(atPath: full)
        }
        return result
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
