import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// The raw reads under observe: `lstat(2)`, `readlinkat(2)` and whole-file reads that check the file is the one
/// `stat` saw. None follows a link in the last component; none spawns a process.
extension Observer {
    /// The kind, permission bits and owner `stat` shows.
    static func pathState(_ st: stat) -> PathState {
        PathState(kind: kind(st.st_mode), mode: UInt32(st.st_mode) & 0o7777, uid: Int(st.st_uid), gid: Int(st.st_gid))
    }

    /// The target of the symbolic link `name` below the directory `dir` (`AT_FDCWD` for a whole path), read with
    /// `readlinkat(2)` (`readlink(2)` directly: FileManager's wrapper costs more than the call); nil when it fails.
    static func linkTarget(_ dir: Int32, _ name: String) -> String? {
        // A target is at most PATH_MAX bytes; the buffer lives on the stack (one per link read, thousands a run).
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX)) { buf in
            let n = readlinkat(dir, name, buf.baseAddress!, buf.count)
            return n >= 0
                ? String(decoding: UnsafeRawBufferPointer(start: buf.baseAddress, count: n), as: UTF8.self) : nil
        }
    }

    static func kind(_ mode: mode_t) -> PathState.Kind {
        switch mode & S_IFMT {
        case S_IFREG: .file
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
    }

    /// `lstat(2)` of a host path under the root (the last component is not followed).
    public func pathState(_ hostPath: String, readContent: Bool = false) -> PathState {
        let full = root.path(hostPath)
        var st = stat()
        guard lstat(full, &st) == 0 else { return .absent }
        var result = Self.pathState(st)
        if result.kind == .symlink {
            result.linkTarget = Self.linkTarget(AT_FDCWD, full)
        } else if result.kind == .file && readContent && st.st_size <= 4 << 20 {
            result.content = Self.readRegularFile(full, expected: st)
        }
        return result
    }
    /// `pathState` of `relative` below the directory `dir` (an open descriptor): `fstatat(2)` without
    /// following the last component, `readlinkat(2)`, and the content through `openat(2)`; the same answers as for
    /// the whole path, since `dir` was reached the way the whole path's lookup would reach it.
    func pathState(in dir: Int32, _ relative: String, readContent: Bool) -> PathState {
        var st = stat()
        if readContent {
            // Files whose content is read are root's (derived files, drop-ins under /etc): opened straight away,
            // without following a link or blocking, and `fstat` on what was opened is the observation.
            let fd = openat(dir, relative, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            if fd >= 0 {
                defer { close(fd) }
                guard fstat(fd, &st) == 0 else { return .absent }
                var result = Self.pathState(st)
                if result.kind == .file && st.st_size <= 4 << 20 {
                    result.content = Self.readToEnd(fd: fd, size: Int(st.st_size))
                }
                return result
            }
            if errno == ENOENT || errno == ENOTDIR { return .absent }
            // ELOOP (a link) and anything else: looked at without opening, below.
        }
        guard fstatat(dir, relative, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
        var result = Self.pathState(st)
        if result.kind == .symlink {
            result.linkTarget = Self.linkTarget(dir, relative)
        }
        return result
    }

    /// The bytes of the regular file `lstat` just saw at `path`: opened without following a link and without
    /// blocking, and read only when `fstat(2)` shows the same regular file (device and inode), so a path swapped
    /// for a link, FIFO or device in between is not read. nil when it cannot be opened or is no longer that file.
    static func readRegularFile(_ path: String, expected: stat) -> Data? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readRegularFile(fd: fd, expected: expected)
    }

    /// `readRegularFile(_:expected:)` of a file already opened (not closed here).
    static func readRegularFile(fd: Int32, expected: stat) -> Data? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_dev == expected.st_dev,
            st.st_ino == expected.st_ino
        else { return nil }
        return readToEnd(fd: fd, size: Int(st.st_size))
    }

    /// The bytes from `fd`'s offset to its end: one read for `size` (what `fstat` gave) plus a byte, so a file that
    /// grew meanwhile is read on to its end. nil on a read error.
    static func readToEnd(fd: Int32, size: Int) -> Data? {
        var data = Data(count: size + 1)
        var filled = 0
        while true {
            if filled == data.count { data.count += 4096 }
            let n = data.withUnsafeMutableBytes { buf in read(fd, buf.baseAddress! + filled, buf.count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            filled += n
            if filled < data.count { break }  // a short read of a regular file: its end
        }
        data.count = filled
        return data
    }
}
