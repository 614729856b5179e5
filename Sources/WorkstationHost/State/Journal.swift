import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

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
        fsync(fd)
    }
}
