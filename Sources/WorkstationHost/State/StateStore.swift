import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

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
