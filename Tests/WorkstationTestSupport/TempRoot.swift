import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system's temporary directory (`/tmp/ws-<label>-<8 hex>`), removed with everything in
/// it when the value goes away: the host root of a test (paths below it are host paths such as `/etc/passwd`), or
/// any scratch directory. Keep the value (not only its `path`) alive while the directory is in use.
public final class TempRoot: @unchecked Sendable {
    /// The directory's absolute path, without a trailing slash.
    public let path: String

    /// Creates the directory (mode 0755 under root's umask).
    /// - Parameter label: a word naming the test or helper, part of the directory's name.
    public init(_ label: String = "root") throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("ws-\(label)-\(UUID().uuidString.prefix(8))")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The real path of `hostPath` (which starts with `/`) under this root.
    public func file(_ hostPath: String) -> String { path + hostPath }

    /// True when anything (even a dangling link) is at the path.
    public func exists(_ hostPath: String) -> Bool {
        var st = stat()
        return lstat(file(hostPath), &st) == 0
    }

    /// The file's text (UTF-8), nil when it cannot be read.
    public func read(_ hostPath: String) -> String? { try? String(contentsOfFile: file(hostPath), encoding: .utf8) }

    /// The file's bytes, nil when it cannot be read.
    public func readData(_ hostPath: String) -> Data? { FileManager.default.contents(atPath: file(hostPath)) }

    /// Writes `content` to `hostPath` (temp file + rename), creating the directories on the way.
    /// - Parameters:
    ///   - mode: permission bits to set afterwards (e.g. `0o600`); nil leaves the umask's.
    ///   - owner: uid and gid to give the file afterwards (`chown(2)`); nil leaves the writer's.
    public func write(
        _ hostPath: String,
        _ content: String,
        mode: Int? = nil,
        owner: (uid: Int, gid: Int)? = nil
    ) throws {
        try write(hostPath, Data(content.utf8), mode: mode, owner: owner)
    }

    /// `write(_:_:mode:owner:)` for bytes.
    public func write(_ hostPath: String, _ content: Data, mode: Int? = nil, owner: (uid: Int, gid: Int)? = nil) throws
    {
        let full = file(hostPath)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try content.write(to: URL(fileURLWithPath: full), options: .atomic)
        if let mode { chmod(full, mode_t(mode)) }
        if let owner { chown(full, uid_t(owner.uid), gid_t(owner.gid)) }
    }

    /// Creates the directory `hostPath` and its parents.
    public func createDirectory(_ hostPath: String) throws {
        try FileManager.default.createDirectory(atPath: file(hostPath), withIntermediateDirectories: true)
    }

    /// Removes whatever is at `hostPath` (a directory with its contents); nothing there is not an error.
    public func remove(_ hostPath: String) {
        try? FileManager.default.removeItem(atPath: file(hostPath))
    }

    /// Every entry under the root (`TreeSnapshot`), leaving out the subtrees at the host paths in `excluding`.
    public func snapshot(excluding: [String] = []) -> TreeSnapshot { TreeSnapshot(path, excluding: excluding) }
}
