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
