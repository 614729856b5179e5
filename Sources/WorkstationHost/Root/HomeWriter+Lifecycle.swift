import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Reading, replacing and removing entries under a home for cutover, rollback and the revoke stage, with the same
/// rules as every other home write: walk from the home with `O_NOFOLLOW`, act on the final entry itself
/// (`fstatat(2)`/`unlinkat(2)`/`renameat(2)` never follow it), refuse a path whose components are links.
extension HomeWriter {
    /// `lstat` of `relative` inside the home, plus the link target, or the bytes of a regular file up to `maxBytes`.
    /// - Returns: `.absent` when nothing is there.
    /// - Throws: `HomeWriteError.refused` when a parent component is a symlink.
    public func inspect(home: String, relative: String, owner: Owner, maxBytes: Int = 1 << 20) throws -> PathState {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            var st = stat()
            guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno == ENOENT { return .absent }
                throw HomeWriteError.system(display, "stat", errno)
            }
            var out = PathState(
                kind: .other,
                mode: UInt32(st.st_mode) & 0o7777,
                uid: Int(st.st_uid),
                gid: Int(st.st_gid)
            )
            switch st.st_mode & S_IFMT {
            case S_IFDIR: out.kind = .directory
            case S_IFLNK:
                out.kind = .symlink
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(dirfd, name, &buf, buf.count - 1)
                guard n >= 0 else { throw HomeWriteError.system(display, "readlink", errno) }
                out.linkTarget = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            case S_IFREG:
                out.kind = .file
                if Int(st.st_size) <= maxBytes {
                    let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                    guard fd >= 0 else { throw HomeWriteError.system(display, "open", errno) }
                    defer { close(fd) }
                    out.content = try readAll(fd, display: display)
                }
            default: break
            }
            return out
        }
    }

    /// Unlinks the entry at `relative` (a file or a symlink, never followed); a directory is refused.
    /// - Returns: false when nothing was there.
    /// - Throws: `.refused` for a directory, or for anything but a symlink when `onlySymlink`.
    @discardableResult
    public func removeEntry(home: String, relative: String, owner: Owner, onlySymlink: Bool) throws -> Bool {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            var st = stat()
            guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno == ENOENT { return false }
                throw HomeWriteError.system(display, "stat", errno)
            }
            let fmt = st.st_mode & S_IFMT
            if fmt == S_IFDIR {
                throw HomeWriteError.refused(
                    display,
                    "it is a directory; workstation only removes files and links it recorded"
                )
            }
            if onlySymlink && fmt != S_IFLNK {
                throw HomeWriteError.refused(display, "it is no longer a symlink; left as it is")
            }
            guard unlinkat(dirfd, name, 0) == 0 else { throw HomeWriteError.system(display, "unlink", errno) }
            return true
        }
    }

    /// Replaces (or creates) the regular file at `relative` with `content`: a temp file in the same directory with the
    /// owner and mode of the file it replaces (or `fileOwner`/`mode` when given), `fsync`, then `renameat(2)` over it.
    /// - Throws: `.refused` when the entry is a link, a directory or another kind; `.exists` never.
    public func replaceFile(
        home: String,
        relative: String,
        content: Data,
        owner: Owner,
        fileOwner: Owner? = nil,
        mode: mode_t? = nil
    ) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            var st = stat()
            var keepOwner = fileOwner ?? owner
            var keepMode = mode ?? 0o600
            if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                guard st.st_mode & S_IFMT == S_IFREG else {
                    throw HomeWriteError.refused(display, "it is not a regular file")
                }
                if fileOwner == nil { keepOwner = Owner(uid: Int(st.st_uid), gid: Int(st.st_gid)) }
                if mode == nil { keepMode = st.st_mode & 0o7777 }
            } else if errno != ENOENT {
                throw HomeWriteError.system(display, "stat", errno)
            }
            let tmp = ".workstation-tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
            let fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw HomeWriteError.system(display, "create temp file", errno) }
            var placed = false
            defer {
                close(fd)
                if !placed { unlinkat(dirfd, tmp, 0) }
            }
            try writeAll(fd, content, display: display)
            guard fchown(fd, keepOwner.uid, keepOwner.gid) == 0, fchmod(fd, keepMode) == 0, fsync(fd) == 0 else {
                throw HomeWriteError.system(display, "set owner and mode", errno)
            }
            guard renameat(dirfd, tmp, dirfd, name) == 0 else { throw HomeWriteError.system(display, "rename", errno) }
            placed = true
        }
    }

    /// Creates the symlink `relative -> target` owned by `linkOwner`, replacing a symlink already there
    /// (`renameat(2)` from a root-owned staging directory); a file or directory there is refused.
    public func replaceSymlink(home: String, relative: String, target: String, owner: Owner, linkOwner: Owner) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            var st = stat()
            if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mode & S_IFMT != S_IFLNK {
                throw HomeWriteError.refused(
                    display,
                    "a \(st.st_mode & S_IFMT == S_IFDIR ? "directory" : "file") is there now; move it aside first"
                )
            }
            try viaStaging(dirfd, display: display) { stagefd in
                guard symlinkat(target, stagefd, "item") == 0 else {
                    throw HomeWriteError.system(display, "symlink", errno)
                }
                guard fchownat(stagefd, "item", linkOwner.uid, linkOwner.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw HomeWriteError.system(display, "chown", errno)
                }
                guard renameat(stagefd, "item", dirfd, name) == 0 else {
                    throw HomeWriteError.system(display, "rename", errno)
                }
            }
        }
    }

    /// Moves the entry at `relative` (not followed) into `directory` (a root-owned host directory under the root)
    /// as `newName`, with `renameat(2)`.
    /// - Returns: false when nothing was there.
    /// - Throws: `.system(..., EXDEV)` when the two are on different file systems.
    @discardableResult
    public func moveOut(home: String, relative: String, owner: Owner, directory: String, newName: String) throws -> Bool
    {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            let tfd = open(root.path(directory), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard tfd >= 0 else { throw HomeWriteError.system(directory, "open", errno) }
            defer { close(tfd) }
            guard renameat(dirfd, name, tfd, newName) == 0 else {
                if errno == ENOENT { return false }
                throw HomeWriteError.system(display, "move to \(directory)", errno)
            }
            return true
        }
    }

    func readAll(_ fd: Int32, display: String) throws -> Data {
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { throw HomeWriteError.system(display, "read", errno) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
