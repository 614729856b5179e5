import Foundation
import WorkstationCore

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a root-owned system file atomically: a temp file in the same directory, `fsync`, `rename(2)`, then
/// `fsync` of the directory, so a reader (or a crash) sees the old or the new version, never a torn one.
/// Parent directories are created `0755` when missing.
///
/// - Throws: `FileWriteError` naming the path and `errno`.
public func writeFileAtomically(_ data: Data, to path: String, mode: UInt32 = 0o644) throws {
    let dir = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    let tmp = "\(dir)/.\((path as NSString).lastPathComponent).tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
    guard fd >= 0 else { throw FileWriteError(path: path, operation: "create \(tmp)", errno: errno) }
    var ok = true
    var failure = FileWriteError(path: path, operation: "write", errno: 0)
    data.withUnsafeBytes { buf in
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n <= 0 {
                ok = false
                failure = FileWriteError(path: path, operation: "write", errno: errno)
                return
            }
            off += n
        }
    }
    if ok && fchmod(fd, mode_t(mode)) != 0 { ok = false; failure = FileWriteError(path: path, operation: "fchmod", errno: errno) }
    if ok && fsync(fd) != 0 { ok = false; failure = FileWriteError(path: path, operation: "fsync", errno: errno) }
    close(fd)
    if ok && rename(tmp, path) != 0 { ok = false; failure = FileWriteError(path: path, operation: "rename", errno: errno) }
    guard ok else {
        unlink(tmp)
        throw failure
    }
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        fsync(dfd)
        close(dfd)
    }
}

/// A failed system call while writing a file.
public struct FileWriteError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32
    public var description: String { "cannot write \(path): \(operation) failed: \(String(cString: strerror(errno)))" }
}

/// `state.json` under the state directory: what workstation manages (accounts, ports, groups, retired uids).
public struct StateStore: Sendable {
    public let root: HostRoot
    public let settings: Settings

    public init(root: HostRoot, settings: Settings) {
        self.root = root
        self.settings = settings
    }

    public var hostPath: String { joinPath(settings.stateDirectory, "state.json") }

    /// The recorded state; empty when the file does not exist yet.
    /// - Throws: `ObserveError.unreadable` when it exists but is not valid state JSON.
    public func load() throws -> WorkstationState {
        var st = stat()
        guard lstat(root.path(hostPath), &st) == 0 else { return WorkstationState() }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ObserveError.unreadable(path: root.path(hostPath), reason: "not a regular file; workstation's record must be a plain file, restore it from a backup")
        }
        guard let data = root.read(hostPath) else {
            throw ObserveError.unreadable(path: root.path(hostPath), reason: "cannot be read")
        }
        do {
            let dec = JSONDecoder()
            dec.keyDecodingStrategy = .convertFromSnakeCase
            return try dec.decode(WorkstationState.self, from: data)
        } catch {
            throw ObserveError.unreadable(path: root.path(hostPath), reason: "not valid state JSON (\(error)); restore it from the journal or a backup")
        }
    }

    /// Saves atomically, mode 0600 (it lists accounts and ports, nothing secret, but it is root's bookkeeping).
    public func save(_ state: WorkstationState) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        var data = try enc.encode(state)
        data.append(0x0A)
        try FileManager.default.createDirectory(atPath: root.path(settings.stateDirectory), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try writeFileAtomically(data, to: root.path(hostPath), mode: 0o600)
    }
}

/// One JSON line per change applied: `journal.jsonl` under the state directory.
public final class Journal: @unchecked Sendable {
    public struct Entry: Codable, Sendable {
        /// Seconds since 1970.
        public var time: Double
        public var run: String
        public var change: String
        public var user: String?
        public var safety: String
        public var summary: String
        public var fields: [FieldChange]
        /// `ok`, `failed`, `refused` or `skipped`.
        public var result: String
        public var error: String?
    }

    private let fd: Int32
    public let run: String

    /// Opens (creates 0600) the journal for appending.
    public init(root: HostRoot, settings: Settings, run: String) throws {
        let dir = root.path(settings.stateDirectory)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = dir + "/journal.jsonl"
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        Journal.terminateTornTail(fd)
        self.run = run
    }

    deinit { close(fd) }

    /// Appends one line with a single `write(2)` (O_APPEND keeps lines whole) and fsyncs it.
    public func record(_ change: Change, result: String, error: String? = nil) {
        let e = Entry(time: Date().timeIntervalSince1970, run: run, change: change.id, user: change.user, safety: change.safety.rawValue,
                      summary: change.summary, fields: change.fields, result: result, error: error)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? enc.encode(e) else { return }
        line.append(0x0A)
        line.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
    }
}

/// One apply at a time: an exclusive `flock(2)` on `<state dir>/lock`, held for the life of the value.
public final class RunLock: @unchecked Sendable {
    private let fd: Int32

    /// Waits up to `timeout` seconds for the lock.
    /// - Throws: `LockError.busy` when another run holds it after the wait.
    public init(root: HostRoot, settings: Settings, timeout: Double) throws {
        let dir = root.path(settings.stateDirectory)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = dir + "/lock"
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                close(fd)
                throw LockError.busy(path: path, waited: timeout)
            }
            usleep(50_000)
        }
    }

    /// True when the lock file exists (a run has happened on this host); taking the lock then creates nothing.
    public static func exists(root: HostRoot, settings: Settings) -> Bool {
        var st = stat()
        return lstat(root.path(settings.stateDirectory) + "/lock", &st) == 0
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

public enum LockError: Error, CustomStringConvertible {
    case busy(path: String, waited: Double)
    public var description: String {
        switch self {
        case .busy(let path, let waited):
            "another workstation run holds \(path) (waited \(Int(waited)) s); let it finish, then run again"
        }
    }
}
