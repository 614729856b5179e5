import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one way workstation creates or changes anything under a user's home (DESIGN section 5).
///
/// A user controls everything below their home, so root must never be redirected by a symlink or a swapped path
/// component. Every operation walks from a directory descriptor with `openat(2)` and `O_NOFOLLOW | O_DIRECTORY`,
/// creates with `O_EXCL` ("only if absent"), sets owner and mode on the descriptor (`fchown(2)`, `fchmod(2)`), and
/// places symlinks through a root-owned staging directory with `linkat(2)` (which never replaces). A component that
/// is a symlink, or that changes under us, makes the operation fail with `HomeWriteError.refused` naming the path;
/// nothing outside the home is created, written, chowned or chmodded.
///
/// Trust boundary: the home's parent (`/home`) must be a root-owned directory no one else can write (checked);
/// from the home down, every component is opened without following links, and every directory on the way must
/// belong to the user or to root.
public struct HomeWriter: Sendable {
    public let root: HostRoot

    public init(root: HostRoot) { self.root = root }

    /// The account a home belongs to.
    public struct Owner: Sendable {
        public var uid: uid_t
        public var gid: gid_t
        public init(uid: Int, gid: Int) {
            self.uid = uid_t(uid)
            self.gid = gid_t(gid)
        }
    }

    /// Creates `relative` (e.g. `.claude`) as a directory owned by the user with `mode`, and any missing parents.
    /// Idempotent: a real directory the user owns already at the path is accepted as it is (`useradd -m` may have
    /// copied it from skel).
    /// - Returns: true when it was created.
    /// - Throws: `HomeWriteError.exists` when something else is there; `.refused` on a link or swap.
    @discardableResult
    public func createDirectory(home: String, relative: String, owner: Owner, mode: mode_t) throws -> Bool {
        try withParent(home: home, relative: relative, owner: owner, createParents: true) { dirfd, name, display in
            do {
                try makeDirectory(dirfd, name, owner: owner, mode: mode, display: display)
                return true
            } catch HomeWriteError.exists(let p) {
                var st = stat()
                guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw HomeWriteError.system(p, "stat", errno)
                }
                if st.st_mode & S_IFMT == S_IFLNK { throw HomeWriteError.refused(p, "it is a symlink") }
                guard st.st_mode & S_IFMT == S_IFDIR, st.st_uid == owner.uid else { throw HomeWriteError.exists(p) }
                return false
            }
        }
    }

    /// Creates a symlink `relative -> target`, owned by the user, only if nothing is at `relative`.
    /// Idempotent: the same link already there (copied from skel) is accepted.
    /// - Returns: true when it was created.
    /// - Throws: `HomeWriteError.exists` when something else is there; `.refused` on a link or swap in the path.
    @discardableResult
    public func createSymlink(home: String, relative: String, target: String, owner: Owner) throws -> Bool {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            if let existing = readLink(dirfd, name) {
                guard existing == target else { throw HomeWriteError.exists(display) }
                return false
            }
            try viaStaging(dirfd, display: display) { stagefd in
                guard symlinkat(target, stagefd, "item") == 0 else {
                    throw HomeWriteError.system(display, "symlink", errno)
                }
                guard fchownat(stagefd, "item", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw HomeWriteError.system(display, "chown", errno)
                }
                try moveNoReplace(stagefd, "item", dirfd, name, display: display)
            }
            return true
        }
    }

    /// Writes a file only if absent (`O_CREAT | O_EXCL | O_NOFOLLOW`), owned by the user with `mode`.
    /// - Throws: `HomeWriteError.exists` when anything is already there.
    public func createFile(
        home: String,
        relative: String,
        content: Data,
        owner: Owner,
        mode: mode_t,
        createParents: Bool = false
    ) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: createParents) {
            dirfd,
            name,
            display in
            let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let e = errno
                if e == EEXIST && readLink(dirfd, name) != nil {
                    throw HomeWriteError.refused(display, "it is a symlink")
                }
                throw e == EEXIST ? HomeWriteError.exists(display) : HomeWriteError.system(display, "create", e)
            }
            defer { close(fd) }
            try writeAll(fd, content, display: display)
            guard fchown(fd, owner.uid, owner.gid) == 0, fchmod(fd, mode) == 0, fsync(fd) == 0 else {
                throw HomeWriteError.system(display, "set owner and mode", errno)
            }
        }
    }

    /// Keeps only the permission bits in `mode` (e.g. `0o700` turns 0664 into 0600; bits are never added) on a
    /// regular file the user owns.
    /// - Returns: the mode before.
    /// - Throws: `.refused` when the path is a link, not a regular file, has other hard links (it may be a file
    ///   outside the home), or is not owned by the user (never chowned).
    @discardableResult
    public func tightenFile(home: String, relative: String, owner: Owner, mode: mode_t) throws -> mode_t {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            // Look before opening, so a planted FIFO or device is never opened.
            var pre = stat()
            guard fstatat(dirfd, name, &pre, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw HomeWriteError.system(display, "stat", errno)
            }
            if pre.st_mode & S_IFMT == S_IFLNK { throw HomeWriteError.refused(display, "it is a symlink") }
            guard pre.st_mode & S_IFMT == S_IFREG else {
                throw HomeWriteError.refused(display, "it is not a regular file")
            }
            let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else {
                throw errno == ELOOP
                    ? HomeWriteError.refused(display, "it is a symlink") : HomeWriteError.system(display, "open", errno)
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw HomeWriteError.system(display, "stat", errno) }
            guard st.st_dev == pre.st_dev, st.st_ino == pre.st_ino else {
                throw HomeWriteError.refused(display, "it was swapped while being checked")
            }
            guard st.st_mode & S_IFMT == S_IFREG else {
                throw HomeWriteError.refused(display, "it is not a regular file")
            }
            guard st.st_nlink == 1 else {
                throw HomeWriteError.refused(
                    display,
                    "it has \(st.st_nlink) hard links, so it may be a file outside the home"
                )
            }
            guard st.st_uid == owner.uid else {
                throw HomeWriteError.refused(display, "it is owned by uid \(st.st_uid), not the user")
            }
            let before = st.st_mode & 0o7777
            let after = before & mode
            if after != before {
                guard fchmod(fd, after) == 0 else { throw HomeWriteError.system(display, "chmod", errno) }
            }
            return before
        }
    }

    /// chmod/chown of the home directory itself (never recursive), opened with `O_NOFOLLOW`.
    /// - Throws: `.refused` when the home is a link, or `chown` is asked for a home that belongs to a third account
    ///   (only a root-owned home is ever handed to its user).
    public func secureHome(home: String, owner: Owner, chown: Bool, mode: mode_t) throws {
        let fd = try openHome(home, owner: owner, requireOwner: false)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw HomeWriteError.system(home, "stat", errno) }
        if st.st_uid != owner.uid && !(chown && st.st_uid == geteuid()) {
            throw HomeWriteError.refused(home, "the home is owned by uid \(st.st_uid), not the user")
        }
        if chown && st.st_uid != owner.uid {
            guard fchown(fd, owner.uid, owner.gid) == 0 else { throw HomeWriteError.system(home, "chown", errno) }
        }
        guard fchmod(fd, mode) == 0 else { throw HomeWriteError.system(home, "chmod", errno) }
    }

    // MARK: walking

    /// Opens the home with `O_NOFOLLOW`: its parent (`/home`) is root's and trusted; the home itself is not.
    func openHome(_ home: String, owner: Owner, requireOwner: Bool = true) throws -> Int32 {
        // A home is a named directory below a directory below `/` (`/home/alice`); `/`, `/etc`, `..` never are.
        let components = home.split(separator: "/")
        guard home.hasPrefix("/"), components.count >= 2, !components.contains(".."), !components.contains(".") else {
            throw HomeWriteError.refused(home, "not a home directory (a home is a directory such as /home/NAME)")
        }
        let parent = root.path((home as NSString).deletingLastPathComponent)
        let name = (home as NSString).lastPathComponent
        let pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard pfd >= 0 else { throw HomeWriteError.system(home, "open parent", errno) }
        defer { close(pfd) }
        var pst = stat()
        guard fstat(pfd, &pst) == 0 else { throw HomeWriteError.system(home, "stat parent", errno) }
        // Whoever can write the parent can swap the home itself: only a root-owned parent no one else writes is trusted.
        guard pst.st_uid == geteuid(), pst.st_mode & 0o022 == 0 else {
            throw HomeWriteError.refused(
                home,
                "its parent directory is writable by others than root (mode \(String(pst.st_mode & 0o7777, radix: 8)), owner uid \(pst.st_uid))"
            )
        }
        let fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw errno == ELOOP || errno == ENOTDIR
                ? HomeWriteError.refused(home, "the home is not a real directory")
                : HomeWriteError.system(home, "open", errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw HomeWriteError.system(home, "stat", errno)
        }
        if requireOwner && st.st_uid != owner.uid {
            close(fd)
            throw HomeWriteError.refused(home, "the home is owned by uid \(st.st_uid), not the user")
        }
        return fd
    }

    /// Walks to the parent of `relative` inside the home, component by component, and calls `body` with it.
    func withParent<T>(
        home: String,
        relative: String,
        owner: Owner,
        createParents: Bool,
        _ body: (Int32, String, String) throws -> T
    ) throws -> T {
        let parts = relative.split(separator: "/").map(String.init)
        guard let last = parts.last, !parts.contains(".."), !parts.contains(".") else {
            throw HomeWriteError.refused(joinDisplay(home, relative), "not a plain relative path")
        }
        var fd = try openHome(home, owner: owner)
        defer { close(fd) }
        var display = home
        for comp in parts.dropLast() {
            display += "/" + comp
            var next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && createParents {
                try makeDirectory(fd, comp, owner: owner, mode: 0o700, display: display)
                next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            guard next >= 0 else {
                throw errno == ELOOP || errno == ENOTDIR
                    ? HomeWriteError.refused(display, "a path component is a symlink or not a directory")
                    : HomeWriteError.system(display, "open", errno)
            }
            var st = stat()
            guard fstat(next, &st) == 0, st.st_uid == owner.uid || st.st_uid == geteuid() else {
                close(next)
                throw HomeWriteError.refused(display, "the directory belongs to another account")
            }
            close(fd)
            fd = next
        }
        return try body(fd, last, display + "/" + last)
    }

    private func joinDisplay(_ a: String, _ b: String) -> String { a + "/" + b }

    /// mkdirat, then open the new entry with O_NOFOLLOW and check it is the root-owned directory just made
    /// before handing it to the user with fchown on the descriptor.
    private func makeDirectory(_ dirfd: Int32, _ name: String, owner: Owner, mode: mode_t, display: String) throws {
        guard mkdirat(dirfd, name, 0o700) == 0 else {
            throw errno == EEXIST ? HomeWriteError.exists(display) : HomeWriteError.system(display, "mkdir", errno)
        }
        let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw HomeWriteError.refused(display, "the new directory was swapped before it could be secured")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_uid == geteuid() else {
            throw HomeWriteError.refused(display, "the new directory was swapped before it could be secured")
        }
        guard fchown(fd, owner.uid, owner.gid) == 0, fchmod(fd, mode) == 0 else {
            throw HomeWriteError.system(display, "set owner and mode", errno)
        }
    }

    /// Runs `body` with a fresh root-owned 0700 staging directory inside `dirfd` that the user cannot write into.
    func viaStaging(_ dirfd: Int32, display: String, _ body: (Int32) throws -> Void) throws {
        let stage = ".workstation-stage.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard mkdirat(dirfd, stage, 0o700) == 0 else { throw HomeWriteError.system(display, "mkdir staging", errno) }
        let sfd = openat(dirfd, stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var st = stat()
        guard sfd >= 0, fstat(sfd, &st) == 0, st.st_uid == geteuid() else {
            if sfd >= 0 { close(sfd) }
            throw HomeWriteError.refused(display, "the staging directory was swapped")
        }
        defer {
            unlinkat(sfd, "item", 0)
            close(sfd)
            unlinkat(dirfd, stage, AT_REMOVEDIR)
        }
        try body(sfd)
    }

    private func moveNoReplace(_ fromfd: Int32, _ from: String, _ tofd: Int32, _ to: String, display: String) throws {
        // linkat(2) without AT_SYMLINK_FOLLOW links the entry itself and fails with EEXIST rather than replace;
        // the staged name is removed by the caller.
        let rc = linkat(fromfd, from, tofd, to, 0)
        guard rc == 0 else {
            throw errno == EEXIST ? HomeWriteError.exists(display) : HomeWriteError.system(display, "link", errno)
        }
    }

    /// The target of a symlink at `name` in `dirfd`, or nil when there is none (`readlinkat(2)`).
    private func readLink(_ dirfd: Int32, _ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(dirfd, name, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func writeAll(_ fd: Int32, _ data: Data, display: String) throws {
        try data.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                guard n > 0 else { throw HomeWriteError.system(display, "write", errno) }
                off += n
            }
        }
    }
}

/// Why a write into a home did not happen.
public enum HomeWriteError: Error, CustomStringConvertible, Equatable {
    /// Something is already at the path; "if absent" writes never replace it.
    case exists(String)
    /// The path crosses a symlink, a swapped component or a file the user does not own: refused, nothing written.
    case refused(String, String)
    case system(String, String, Int32)

    public var description: String {
        switch self {
        case .exists(let p): "\(p) already exists; left as it is"
        case .refused(let p, let why): "refused to write \(p): \(why)"
        case .system(let p, let op, let e): "cannot write \(p): \(op) failed: \(String(cString: strerror(e)))"
        }
    }
}
