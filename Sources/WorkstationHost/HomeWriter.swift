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
    /// - Throws: `HomeWriteError.exists` when the final component already exists; `.refused` on a link or swap.
    public func createDirectory(home: String, relative: String, owner: Owner, mode: mode_t) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: true) { dirfd, name, display in
            try makeDirectory(dirfd, name, owner: owner, mode: mode, display: display)
        }
    }

    /// Creates a symlink `relative -> target`, owned by the user, only if nothing is at `relative`.
    /// - Throws: `HomeWriteError.exists` when something is there; `.refused` on a link or swap in the path.
    public func createSymlink(home: String, relative: String, target: String, owner: Owner) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            try viaStaging(dirfd, display: display) { stagefd in
                guard symlinkat(target, stagefd, "item") == 0 else { throw HomeWriteError.system(display, "symlink", errno) }
                guard fchownat(stagefd, "item", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw HomeWriteError.system(display, "chown", errno)
                }
                try moveNoReplace(stagefd, "item", dirfd, name, display: display)
            }
        }
    }

    /// Writes a file only if absent (`O_CREAT | O_EXCL | O_NOFOLLOW`), owned by the user with `mode`.
    /// - Throws: `HomeWriteError.exists` when anything is already there.
    public func createFile(home: String, relative: String, content: Data, owner: Owner, mode: mode_t, createParents: Bool = false) throws {
        try withParent(home: home, relative: relative, owner: owner, createParents: createParents) { dirfd, name, display in
            let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw errno == EEXIST ? HomeWriteError.exists(display) : HomeWriteError.system(display, "create", errno)
            }
            defer { close(fd) }
            try writeAll(fd, content, display: display)
            guard fchown(fd, owner.uid, owner.gid) == 0, fchmod(fd, mode) == 0, fsync(fd) == 0 else {
                throw HomeWriteError.system(display, "set owner and mode", errno)
            }
        }
    }

    /// Removes group and other bits (or sets `mode`, never adding bits) on a regular file the user owns.
    /// - Returns: the mode before.
    /// - Throws: `.refused` when the path is a link, not a regular file, or not owned by the user (never chowned).
    @discardableResult
    public func tightenFile(home: String, relative: String, owner: Owner, mode: mode_t) throws -> mode_t {
        try withParent(home: home, relative: relative, owner: owner, createParents: false) { dirfd, name, display in
            let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else {
                throw errno == ELOOP ? HomeWriteError.refused(display, "it is a symlink") : HomeWriteError.system(display, "open", errno)
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw HomeWriteError.system(display, "stat", errno) }
            guard st.st_mode & S_IFMT == S_IFREG else { throw HomeWriteError.refused(display, "it is not a regular file") }
            guard st.st_uid == owner.uid else { throw HomeWriteError.refused(display, "it is owned by uid \(st.st_uid), not the user") }
            let before = st.st_mode & 0o7777
            let after = before & mode
            if after != before { guard fchmod(fd, after) == 0 else { throw HomeWriteError.system(display, "chmod", errno) } }
            return before
        }
    }

    /// chmod/chown of the home directory itself (never recursive), opened with `O_NOFOLLOW`.
    public func secureHome(home: String, owner: Owner, chown: Bool, mode: mode_t) throws {
        let fd = try openHome(home, owner: owner, requireOwner: false)
        defer { close(fd) }
        if chown { guard fchown(fd, owner.uid, owner.gid) == 0 else { throw HomeWriteError.system(home, "chown", errno) } }
        guard fchmod(fd, mode) == 0 else { throw HomeWriteError.system(home, "chmod", errno) }
    }

    // MARK: walking

    /// Opens the home with `O_NOFOLLOW`: its parent (`/home`) is root's and trusted; the home itself is not.
    func openHome(_ home: String, owner: Owner, requireOwner: Bool = true) throws -> Int32 {
        let parent = root.path((home as NSString).deletingLastPathComponent)
        let name = (home as NSString).lastPathComponent
        let pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard pfd >= 0 else { throw HomeWriteError.system(home, "open parent", errno) }
        defer { close(pfd) }
        let fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw errno == ELOOP || errno == ENOTDIR
                ? HomeWriteError.refused(home, "the home is not a real directory") : HomeWriteError.system(home, "open", errno)
        }
        var st = stat()
        fstat(fd, &st)
        if requireOwner && st.st_uid != owner.uid {
            close(fd)
            throw HomeWriteError.refused(home, "the home is owned by uid \(st.st_uid), not the user")
        }
        return fd
    }

    /// Walks to the parent of `relative` inside the home, component by component, and calls `body` with it.
    func withParent<T>(home: String, relative: String, owner: Owner, createParents: Bool,
                               _ body: (Int32, String, String) throws -> T) throws -> T {
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
        guard fd >= 0 else { throw HomeWriteError.refused(display, "the new directory was swapped before it could be secured") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_uid == 0 else { throw HomeWriteError.refused(display, "the new directory was swapped before it could be secured") }
        guard fchown(fd, owner.uid, owner.gid) == 0, fchmod(fd, mode) == 0 else { throw HomeWriteError.system(display, "set owner and mode", errno) }
    }

    /// Runs `body` with a fresh root-owned 0700 staging directory inside `dirfd` that the user cannot write into.
    func viaStaging(_ dirfd: Int32, display: String, _ body: (Int32) throws -> Void) throws {
        let stage = ".workstation-stage.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard mkdirat(dirfd, stage, 0o700) == 0 else { throw HomeWriteError.system(display, "mkdir staging", errno) }
        let sfd = openat(dirfd, stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var st = stat()
        guard sfd >= 0, fstat(sfd, &st) == 0, st.st_uid == 0 else {
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
        guard rc == 0 else { throw errno == EEXIST ? HomeWriteError.exists(display) : HomeWriteError.system(display, "rename", errno) }
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
