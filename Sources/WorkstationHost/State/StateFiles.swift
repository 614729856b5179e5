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
    try FileManager.default.createDirectory(
        atPath: dir,
        withIntermediateDirectories: true,
        attributes: [.posixPermissions: 0o755]
    )
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
    if ok && fchmod(fd, mode_t(mode)) != 0 {
        ok = false
        failure = FileWriteError(path: path, operation: "fchmod", errno: errno)
    }
    if ok && fsync(fd) != 0 {
        ok = false
        failure = FileWriteError(path: path, operation: "fsync", errno: errno)
    }
    close(fd)
    if ok && rename(tmp, path) != 0 {
        ok = false
        failure = FileWriteError(path: path, operation: "rename", errno: errno)
    }
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

/// `state.json` under the state directory: what workstation manages (accounts, ports, groups, retired uids), and
/// `state.log` beside it: the changes an apply recorded since `state.json` was last saved (see `StateLog`).
public struct StateStore: Sendable {
    public let root: HostRoot
    public let settings: Settings

    public init(root: HostRoot, settings: Settings) {
        self.root = root
        self.settings = settings
    }

    public var hostPath: String { joinPath(settings.stateDirectory, "state.json") }
    public var logHostPath: String { joinPath(settings.stateDirectory, "state.log") }

    /// The recorded state: `state.json` (empty when it does not exist yet) with the lines of `state.log` written
    /// since it was saved replayed over it, in order. A last line without its newline was cut short by a crash
    /// before its change was complete, and is ignored; so are lines that follow another `state.json`. Safe without
    /// the run lock: when a whole save replaces `state.json` (and then empties the log) between the two reads, the
    /// read starts again, so a reader never pairs the old file with the emptied log.
    /// - Throws: `ObserveError.unreadable` when either file exists but is not a regular file or not valid.
    public func load() throws -> WorkstationState {
        var attempt = 0
        while true {
            attempt += 1
            guard let (data, log) = try readBoth(checkingReplacement: attempt < 8) else { continue }
            guard let data else { return WorkstationState() }
            var state: WorkstationState
            do {
                let dec = JSONDecoder()
                dec.keyDecodingStrategy = .convertFromSnakeCase
                state = try dec.decode(WorkstationState.self, from: data)
            } catch {
                throw ObserveError.unreadable(
                    path: root.path(hostPath),
                    reason: "not valid state JSON (\(error)); restore it from the journal or a backup"
                )
            }
            for delta in try logLines(log ?? Data(), following: StateStore.base(of: data)) { state.replay(delta) }
            return state
        }
    }

    /// The bytes of `state.json` (nil: there is none) and of `state.log` (nil: there is none); nil when
    /// `checkingReplacement` and `state.json` was replaced while they were read.
    private func readBoth(checkingReplacement: Bool) throws -> (Data?, Data?)? {
        let path = root.path(hostPath)
        guard
            let (data, st) = try readPlainFile(
                path,
                notPlain: "workstation's record must be a plain file, restore it from a backup"
            )
        else {
            return (nil, nil)
        }
        betweenReads?()
        let log = try readPlainFile(
            root.path(logHostPath),
            notPlain: "remove it (state.json alone is a consistent record)"
        )?.0
        if checkingReplacement {
            var now = stat()
            if lstat(path, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino { return nil }
        }
        return (data, log)
    }

    /// Tests: runs between reading `state.json` and reading `state.log` in `load`.
    var betweenReads: (@Sendable () -> Void)?

    /// The bytes of the regular file at `path` and its `fstat`, opened without following a link or blocking; nil when
    /// there is no such file.
    /// - Throws: `ObserveError.unreadable`: "not a regular file; `notPlain`" for a link, FIFO, directory...; else
    ///   the `open(2)` or read error.
    private func readPlainFile(_ path: String, notPlain: String) throws -> (Data, stat)? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw ObserveError.unreadable(
                path: path,
                reason: errno == ELOOP
                    ? "not a regular file; \(notPlain)" : "cannot be opened: \(String(cString: strerror(errno)))"
            )
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw ObserveError.unreadable(path: path, reason: "not a regular file; \(notPlain)")
        }
        guard let data = Observer.readRegularFile(fd: fd, expected: st) else {
            throw ObserveError.unreadable(path: path, reason: "cannot be read")
        }
        return (data, st)
    }

    /// The complete lines of a state log whose base is `base`, decoded, in file order.
    func logLines(_ data: Data, following base: String) throws -> [StateDelta] {
        let path = root.path(logHostPath)
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        var out: [StateDelta] = []
        var lineStart = data.startIndex
        while let nl = data[lineStart...].firstIndex(of: 0x0A) {
            let line = data[lineStart..<nl]
            lineStart = nl + 1
            guard !line.isEmpty else { continue }
            let delta: StateDelta
            do { delta = try dec.decode(StateDelta.self, from: line) } catch {
                throw ObserveError.unreadable(
                    path: path,
                    reason:
                        "a line is not a valid state record (\(error)); restore state.json and this file from a backup"
                )
            }
            if delta.base == base { out.append(delta) }
        }
        return out
    }

    /// Which `state.json` a log line follows, by its content: FNV-1a (64 bits) of the bytes, and their count. Content,
    /// not the file's inode, so a state directory restored from a backup or moved keeps its log. (Two saves of the
    /// same bytes share a base; `save` empties the log first then, see there.)
    static func base(of data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { raw in
            for byte in raw.bindMemory(to: UInt8.self) {
                h ^= UInt64(byte)
                h = h &* 0x0000_0100_0000_01b3
            }
        }
        return "fnv1a64:" + String(h, radix: 16) + ":" + String(data.count)
    }

    /// Saves atomically, mode 0600 (it lists accounts and ports, nothing secret, but it is root's bookkeeping), then
    /// empties `state.log` (its lines followed the file just replaced; a crash before that leaves them ignored, as
    /// they name another base). When the log holds lines for exactly the bytes about to be saved, it is emptied first:
    /// the saved state already includes whatever they recorded.
    /// - Returns: the saved file's base, for new log lines.
    @discardableResult
    public func save(_ state: WorkstationState) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        var data = try enc.encode(state)
        data.append(0x0A)
        try FileManager.default.createDirectory(
            atPath: root.path(settings.stateDirectory),
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let base = StateStore.base(of: data)
        if let log = FileManager.default.contents(atPath: root.path(logHostPath)),
            log.range(of: Data("\"base\":\"\(base)\"".utf8)) != nil
        {
            try emptyLog()
        }
        try writeFileAtomically(data, to: root.path(hostPath), mode: 0o600)
        // Lines left now (this cannot fail but on a vanished directory) follow the replaced file: they are ignored.
        try? emptyLog()
        return base
    }

    /// Truncates `state.log` to nothing (absent: nothing to do).
    private func emptyLog() throws {
        let log = open(root.path(logHostPath), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
        guard log >= 0 else {
            if errno == ENOENT { return }
            throw FileWriteError(path: root.path(logHostPath), operation: "truncate", errno: errno)
        }
        close(log)
    }
}

/// Records the state as an apply changes it, at a cost that does not grow with the host: each change appends one
/// line to `state.log` (`StateDelta`: the entries of the people it touched and the host-wide fields; one `write(2)`
/// with `O_APPEND`, then `fsync`), and `state.json` is saved whole only when the log has grown to its size (and at
/// least 64 KiB), at the start and at the end. `StateStore.load` replays the log, so a run killed at any moment
/// leaves the record as of its last complete line. Hold the run lock while using it.
public final class StateLog {
    private let store: StateStore
    private let fd: Int32
    private var base: String
    private var logBytes = 0
    private var stateBytes = 0
    /// A line could not be written: its people's entries are missing from the log, so the next record saves whole.
    private var lineLost = false
    /// Tests: the next append fails with this errno before writing (as a full disk would).
    var failNextAppend: Int32?

    /// Saves `state` whole (a fresh base, an empty log) and opens the log for appending.
    /// - Throws: `FileWriteError` naming the path.
    public init(store: StateStore, state: WorkstationState) throws {
        self.store = store
        base = try store.save(state)
        let path = store.root.path(store.logHostPath)
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        stateBytes = fileSize(store.root.path(store.hostPath))
    }

    deinit { close(fd) }

    /// Records `state` after a change that touched `users` (their entries and the host-wide fields).
    /// - Throws: `FileWriteError` when the line cannot be written whole.
    public func record(_ state: WorkstationState, users: some Sequence<String>) throws {
        if lineLost || logBytes >= max(stateBytes, 64 << 10) { return try save(state) }
        do {
            if let e = failNextAppend {
                failNextAppend = nil
                throw FileWriteError(path: store.root.path(store.logHostPath), operation: "write", errno: e)
            }
            logBytes += try Self.append(
                StateDelta(base: base, state: state, users: users),
                to: fd,
                path: store.root.path(store.logHostPath)
            )
        } catch {
            lineLost = true
            throw error
        }
    }

    /// Records a change of the host-wide fields alone (a no-op apply's `last_successful_apply`) as one line over the
    /// `state.json` on disk, without rewriting it; saves whole instead when there is no `state.json` yet or the log
    /// has grown to its size. Hold the run lock, and pass a state whose per-person entries equal the recorded ones.
    /// - Throws: `FileWriteError` naming the path.
    public static func recordHostWide(_ state: WorkstationState, store: StateStore) throws {
        var st = stat()
        guard lstat(store.root.path(store.hostPath), &st) == 0, st.st_mode & S_IFMT == S_IFREG,
            let saved = FileManager.default.contents(atPath: store.root.path(store.hostPath))
        else {
            _ = try store.save(state)
            return
        }
        let path = store.root.path(store.logHostPath)
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var logStat = stat()
        guard fstat(fd, &logStat) == 0, Int(logStat.st_size) < max(Int(st.st_size), 64 << 10) else {
            _ = try store.save(state)
            return
        }
        // Append only behind whole lines of this very state.json: never behind a line a crash cut short (it is ignored
        // while it is the last), nor behind lines an interrupted save left for an older file (saved whole instead).
        let base = StateStore.base(of: saved)
        let prefix = Data("{\"base\":\"\(base)\"".utf8)
        var log = Data(count: Int(logStat.st_size))
        let got = log.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got == log.count, log.isEmpty || log.last == 0x0A,
            log.split(separator: 0x0A).allSatisfy({ $0.starts(with: prefix) })
        else {
            _ = try store.save(state)
            return
        }
        _ = try append(StateDelta(base: base, state: state, users: []), to: fd, path: path)
    }

    /// Appends `delta` as one line with a single `write(2)` on the `O_APPEND` descriptor `fd`, then `fsync`s.
    /// - Returns: the bytes written.
    /// - Throws: `FileWriteError`; a short write is cut off again first (the next line would join it).
    private static func append(_ delta: StateDelta, to fd: Int32, path: String) throws -> Int {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        var line = try enc.encode(delta)
        line.append(0x0A)
        var before = stat()
        fstat(fd, &before)
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == line.count else {
            if n > 0 { ftruncate(fd, before.st_size) }
            throw FileWriteError(path: path, operation: "write", errno: n < 0 ? errno : EIO)
        }
        guard fsync(fd) == 0 else { throw FileWriteError(path: path, operation: "fsync", errno: errno) }
        return n
    }

    /// Saves `state` whole and starts the log again.
    public func save(_ state: WorkstationState) throws {
        base = try store.save(state)
        lineLost = false
        logBytes = 0
        stateBytes = fileSize(store.root.path(store.hostPath))
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return lstat(path, &st) == 0 ? Int(st.st_size) : 0
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
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let path = dir + "/journal.jsonl"
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        Journal.terminateTornTail(fd)
        self.run = run
    }

    deinit { close(fd) }

    /// Appends one line with a single `write(2)` (O_APPEND keeps lines whole) and fsyncs it.
    public func record(_ change: Change, result: String, error: String? = nil) {
        let e = Entry(
            time: Date().timeIntervalSince1970,
            run: run,
            change: change.id,
            user: change.user,
            safety: change.safety.rawValue,
            summary: change.summary,
            fields: change.fields,
            result: result,
            error: error
        )
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
    /// - Throws: `ValidationFailure` when a path of the settings is unsafe on this host (`settingsPathDiagnostics`:
    ///   the state directory through a link...), before anything is created; `LockError.busy` when another run
    ///   holds it after the wait.
    public init(root: HostRoot, settings: Settings, timeout: Double) throws {
        let unsafe = Observer(root: root, settings: settings).settingsPathDiagnostics()
        if !unsafe.isEmpty { throw ValidationFailure(unsafe) }
        let dir = root.path(settings.stateDirectory)
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
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
