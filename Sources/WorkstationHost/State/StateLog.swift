import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Records the state as an apply changes it, at a cost that does not grow with the host: each change appends one
/// line to `state.log` (`StateDelta`: the entries of the people it touched and the host-wide fields; one `write(2)`
/// with `O_APPEND`; a durable record, such as an intent that must be on disk before its tool runs, is `fsync`ed
/// together with the lines before it, the others at the next durable record, save or close), and `state.json` is saved whole only when the log has grown to its size (and at
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
    /// Lines written since the last `fsync`.
    private var unsynced = false

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

    deinit {
        if unsynced { fsync(fd) }
        close(fd)
    }

    /// Records `state` after a change that touched `users` (their entries and the host-wide fields).
    /// - Parameter durable: `fsync` the log before returning (this line and every earlier one): for a record that
    ///   must be on disk before what follows it (an intent, before its tool runs). Otherwise the line is written
    ///   (a `kill -9` cannot lose it) and reaches the disk with the next durable record, `sync()`, save or close.
    /// - Throws: `FileWriteError` when the line cannot be written whole or synced.
    public func record(_ state: WorkstationState, users: some Sequence<String>, durable: Bool = true) throws {
        if lineLost || logBytes >= max(stateBytes, 64 << 10) { return try save(state) }
        do {
            if let e = failNextAppend {
                failNextAppend = nil
                throw FileWriteError(path: store.root.path(store.logHostPath), operation: "write", errno: e)
            }
            logBytes += try Self.append(
                StateDelta(base: base, state: state, users: users),
                to: fd,
                path: store.root.path(store.logHostPath),
                sync: false
            )
            unsynced = true
            if durable { try sync() }
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

    /// `fsync(2)` of the lines written since the last sync (none: nothing to do).
    /// - Throws: `FileWriteError` naming the log.
    public func sync() throws {
        guard unsynced else { return }
        guard fsync(fd) == 0 else {
            throw FileWriteError(path: store.root.path(store.logHostPath), operation: "fsync", errno: errno)
        }
        unsynced = false
    }

    /// Appends `delta` as one line with a single `write(2)` on the `O_APPEND` descriptor `fd`, then `fsync`s when
    /// `sync`.
    /// - Returns: the bytes written.
    /// - Throws: `FileWriteError`; a short write is cut off again first (the next line would join it).
    private static func append(_ delta: StateDelta, to fd: Int32, path: String, sync: Bool = true) throws -> Int {
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
        guard !sync || fsync(fd) == 0 else { throw FileWriteError(path: path, operation: "fsync", errno: errno) }
        return n
    }

    /// Saves `state` whole and starts the log again.
    public func save(_ state: WorkstationState) throws {
        base = try store.save(state)
        unsynced = false
        lineLost = false
        logBytes = 0
        stateBytes = fileSize(store.root.path(store.hostPath))
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return lstat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
