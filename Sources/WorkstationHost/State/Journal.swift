import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// One JSON line per change applied: `journal.jsonl` under the state directory. Each line is one `write(2)` on an
/// `O_APPEND` descriptor the moment its change ends, so a `kill -9` never loses or cuts one (the page cache outlives
/// the process). Lines are `fsync`ed together rather than one by one: when a second has passed since the last sync,
/// on `sync()`, and when the journal is closed; a power loss can lose at most the lines of the last second.
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
    /// Lines written since the last `fsync`.
    private var unsynced = false
    /// When the journal was last synced (`CLOCK_MONOTONIC`, nanoseconds).
    private var lastSync = Journal.monotonicNanoseconds()
    /// The longest lines stay unsynced while a run writes, nanoseconds (one second).
    static let syncInterval: UInt64 = 1_000_000_000

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

    deinit {
        sync()
        close(fd)
    }

    /// `fsync(2)` of the lines written since the last sync (none: nothing to do).
    public func sync() {
        guard unsynced else { return }
        fsync(fd)
        unsynced = false
        lastSync = Journal.monotonicNanoseconds()
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Appends one line with a single `write(2)` (O_APPEND keeps lines whole); syncs when a second has passed since
    /// the last sync.
    public func record(_ change: Change, result: String, error: String? = nil) {
        let e = Entry(
            time: Date().timeIntervalSince1970,
            run: run,
            change: change.id.description,
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
        unsynced = true
        if Journal.monotonicNanoseconds() &- lastSync >= Journal.syncInterval { sync() }
    }
}
