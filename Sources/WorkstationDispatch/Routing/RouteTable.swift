import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import WorkstationCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Identity of one version of a file as `stat(2)` reports it; a rename, rewrite or touch changes it.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int
    var mtimeNanoseconds: Int
    var ctimeSeconds: Int
    var ctimeNanoseconds: Int

    /// nil when the file cannot be stat'ed (missing, permission).
    static func of(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return of(st)
    }

    /// The stamp of the open file `fd` (`fstat(2)`), and its link count: 0 once it was replaced by a rename or
    /// removed, so that a file still open is known to be out of date without looking its path up.
    static func of(fd: Int32) -> (stamp: FileStamp, links: Int)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (of(st), Int(st.st_nlink))
    }

    private static func of(_ st: stat) -> FileStamp {
        #if canImport(Darwin)
        return FileStamp(
            device: UInt64(st.st_dev),
            inode: UInt64(st.st_ino),
            size: Int64(st.st_size),
            mtimeSeconds: st.st_mtimespec.tv_sec,
            mtimeNanoseconds: st.st_mtimespec.tv_nsec,
            ctimeSeconds: st.st_ctimespec.tv_sec,
            ctimeNanoseconds: st.st_ctimespec.tv_nsec
        )
        #else
        return FileStamp(
            device: UInt64(st.st_dev),
            inode: UInt64(st.st_ino),
            size: Int64(st.st_size),
            mtimeSeconds: st.st_mtim.tv_sec,
            mtimeNanoseconds: st.st_mtim.tv_nsec,
            ctimeSeconds: st.st_ctim.tv_sec,
            ctimeNanoseconds: st.st_ctim.tv_nsec
        )
        #endif
    }
}

/// What one reload of dispatch.json did.
public enum ReloadOutcome: Sendable, Equatable {
    /// The file is unchanged since the last read.
    case unchanged
    /// A new map is in force; `dropped` lists users who were removed or whose port changed.
    case loaded(users: Int, dropped: [String])
    /// The file is missing, unreadable or invalid; the last good map stays in force.
    case kept(reason: String)
}

/// The routing map in force, reloaded from dispatch.json whenever the file changes.
///
/// Every lookup `stat(2)`s the file (one system call) and re-reads it when device, inode, size, mtime or ctime
/// differ, so a rewrite (temp file + `rename(2)`) is in force from the next request on. A file that is missing,
/// unreadable, not JSON or not version 1 keeps the last good map and is logged. Thread-safe.
public final class RouteTable: Sendable {
    private struct State {
        var map = DispatchMap(users: [:])
        var stamp: FileStamp?
        var lastBytes: Data?
        /// The bytes of the last file refused, so that the same file seen again (another thread's refresh, a new
        /// stamp for the same bytes) is not logged and counted twice.
        var refusedBytes: Data?
        var lastProblem: String?
        /// The file in force, kept open: `fstat` on it (no path lookup) tells whether it is still current.
        var openFile: Int32 = -1
        /// The file in force had one name when it was read (a second name could change it unseen by a watch of
        /// this directory).
        var soleLink = false
    }

    public let path: String
    private let state = NIOLockedValueBox(State())
    private let logger: Logger
    private let onReload: @Sendable (ReloadOutcome) -> Void

    /// - Parameters:
    ///   - path: dispatch.json.
    ///   - onReload: called after every reload that is not `.unchanged`, outside the lock (metrics, closing
    ///     dropped users' WebSockets).
    public init(path: String, logger: Logger, onReload: @escaping @Sendable (ReloadOutcome) -> Void = { _ in }) {
        self.path = path
        self.logger = logger
        self.onReload = onReload
    }

    /// The user's entry in the current map, after reloading the file if it changed. Exact, case-sensitive key.
    ///
    /// Common case, one `fstat(2)` of the file in force, kept open: unchanged and still its path's only link (a
    /// rename over the path or a removal drops the count to 0). A file with another link, or any difference, falls
    /// back to `stat(2)` of the path and a reload, so a rewrite is in force from the next request on.
    public func lookup(_ user: String) -> DispatchMap.User? {
        // One lock: the entry, with the stamp of the file it was read from. When that file is still in force (fstat
        // of the open file), the entry is current. A reload meanwhile replaced the open file, whose stamp then
        // differs: the slow path below reads the map in force.
        let (fd, inForce, entry) = state.withLockedValue { ($0.openFile, $0.stamp, $0.map.users[user]) }
        if fd >= 0, let inForce, let open = FileStamp.of(fd: fd), open.links == 1, open.stamp == inForce {
            return entry
        }
        let stamp = FileStamp.of(path)
        let hit: DispatchMap.User?? = state.withLockedValue { s in
            guard let stamp, stamp == s.stamp else { return .none }
            return .some(s.map.users[user])
        }
        if let hit { return hit }
        refresh(force: false)
        return state.withLockedValue { $0.map.users[user] }
    }

    /// The user's entry in the map in force, without checking the file: for a caller told of every change to the
    /// file's directory (the fast path's inotify watch), which calls `refresh()` on each.
    /// A file with more than one name is checked as `lookup` checks it.
    func lookupInForce(_ user: String) -> DispatchMap.User? {
        let entry: DispatchMap.User?? = state.withLockedValue { $0.soleLink ? .some($0.map.users[user]) : .none }
        return entry ?? lookup(user)
    }

    deinit {
        let fd = state.withLockedValue { $0.openFile }
        if fd >= 0 { close(fd) }
    }

    /// The map in force (without checking the file).
    public var current: DispatchMap { state.withLockedValue { $0.map } }

    /// Reloads the file if its stamp changed (or always, with `force`).
    ///
    /// The file is opened, and its stamp taken from the open file (`fstat`) and its bytes read from it, under the
    /// lock: the stamp in force is always the stamp of the bytes in force, however many threads refresh at once (a
    /// stamp taken from the path before the lock could belong to the file before a rename, and make the next
    /// refresh read the same bytes again).
    @discardableResult
    public func refresh(force: Bool = false) -> ReloadOutcome {
        let outcome: ReloadOutcome = state.withLockedValue { s in
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            let stamp = fd >= 0 ? FileStamp.of(fd: fd)?.stamp : nil
            if !force, let stamp, stamp == s.stamp {
                close(fd)
                return .unchanged
            }
            guard let stamp else {
                if fd >= 0 { close(fd) }
                if !force, s.stamp == nil, s.lastProblem != nil { return .unchanged }
                s.stamp = nil
                if s.openFile >= 0 { close(s.openFile) }
                s.openFile = -1
                s.soleLink = false
                return keep(
                    &s,
                    "cannot read \(path): \(String(cString: strerror(errno))); fix the file or run workstation apply"
                )
            }
            s.stamp = stamp
            // Kept open for `lookup`'s fast path; it only counts while its stamp is the one in force.
            if s.openFile >= 0 { close(s.openFile) }
            s.openFile = fd
            s.soleLink = FileStamp.of(fd: fd)?.links == 1
            guard let data = try? FileHandle(fileDescriptor: fd, closeOnDealloc: false).readToEnd() ?? Data() else {
                return keep(&s, "cannot read \(path); check its permissions (mode 0644, owned by root)")
            }
            if data == s.lastBytes || data == s.refusedBytes { return .unchanged }
            do {
                let map = try DispatchMap.decode(data)
                if let bad = map.users.first(where: {
                    identityProblem($0.key) != nil || !(1...65535).contains($0.value.port)
                        || $0.value.workspaceProblem != nil
                }) {
                    return keep(
                        &s,
                        "\(path): entry '\(printable(bad.key))' is invalid; regenerate the file with workstation apply",
                        refused: data
                    )
                }
                let old = s.map
                s.map = map
                s.lastBytes = data
                s.refusedBytes = nil
                s.lastProblem = nil
                // Tunnels of a person whose target changed (port, or workspace Service and its name) are cut.
                let dropped = old.users.filter {
                    guard let now = map.users[$0.key] else { return true }
                    return now.port != $0.value.port || now.host != $0.value.host || now.tlsName != $0.value.tlsName
                }.map(\.key).sorted()
                return .loaded(users: map.users.count, dropped: dropped)
            } catch {
                return keep(
                    &s,
                    "\(path) is not a valid version 1 or 2 dispatch.json (\(describe(error))); keeping the last good map",
                    refused: data
                )
            }
        }
        switch outcome {
        case .unchanged: return outcome
        case .loaded(let n, let dropped):
            logger.info(
                "dispatch map loaded",
                metadata: ["users": "\(n)", "dropped": .array(dropped.map { .string($0) })]
            )
        case .kept(let reason):
            logger.error("dispatch map not reloaded", metadata: ["reason": .string(reason)])
        }
        onReload(outcome)
        return outcome
    }

    private func keep(_ s: inout State, _ reason: String, refused: Data? = nil) -> ReloadOutcome {
        s.lastProblem = reason
        s.lastBytes = nil
        s.refusedBytes = refused
        return .kept(reason: reason)
    }

    private func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let c) = error { return c.debugDescription }
        if case DecodingError.keyNotFound(let k, _) = error { return "missing key '\(k.stringValue)'" }
        if case DecodingError.typeMismatch(_, let c) = error {
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        }
        return "\(error)"
    }
}

/// Counts live connections per user and enforces the ceiling on distinct active users. Thread-safe.
///
/// A user is active while they have an in-flight request or an open WebSocket.
public final class ActiveUsers: Sendable {
    private let counts = NIOLockedValueBox([String: Int]())
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    /// Takes one slot for `user`; false when `user` holds none and `limit` other users are active.
    public func acquire(_ user: String) -> Bool { acquireCounting(user) != nil }

    /// `acquire`, returning the number of distinct active users after it (nil: refused), under one lock.
    func acquireCounting(_ user: String) -> Int? {
        counts.withLockedValue { c in
            if let n = c[user] {
                c[user] = n + 1
                return c.count
            }
            guard c.count < limit else { return nil }
            c[user] = 1
            return c.count
        }
    }

    /// Returns a slot taken by `acquire`.
    public func release(_ user: String) { _ = releaseCounting(user) }

    /// `release`, returning the number of distinct active users after it, under one lock.
    @discardableResult
    func releaseCounting(_ user: String) -> Int {
        counts.withLockedValue { c in
            if let n = c[user] { c[user] = n > 1 ? n - 1 : nil }
            return c.count
        }
    }

    /// Number of distinct active users.
    public var activeCount: Int { counts.withLockedValue { $0.count } }
}

/// Open WebSocket tunnels by user, so a user dropped from the map can be cut off. Thread-safe.
public final class TunnelRegistry: Sendable {
    private let tunnels = NIOLockedValueBox([String: [ObjectIdentifier: Channel]]())

    public init() {}

    func add(_ user: String, _ channel: Channel) {
        tunnels.withLockedValue { $0[user, default: [:]][ObjectIdentifier(channel)] = channel }
    }

    func remove(_ user: String, _ channel: Channel) {
        tunnels.withLockedValue { t in
            t[user]?[ObjectIdentifier(channel)] = nil
            if t[user]?.isEmpty == true { t[user] = nil }
        }
    }

    /// Closes every tunnel of `user` (both sides close: the client's and the upstream's connection).
    public func closeAll(of user: String) {
        let channels = tunnels.withLockedValue { $0[user].map { Array($0.values) } ?? [] }
        for c in channels { c.close(promise: nil) }
    }

    /// Number of open tunnels.
    public var count: Int { tunnels.withLockedValue { $0.values.reduce(0) { $0 + $1.count } } }
}
