import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Paths below one home, looked up without following links: every directory on the way is opened with
/// `openat(2)` and `O_NOFOLLOW | O_DIRECTORY` from its parent, starting at the home (`open(2)`), and kept open
/// for the next path of the same home until `closeAll()`. Never reads content.
struct HomeWalk {
    private enum Directory {
        case open(Int32)
        /// A component is missing.
        case absent
        /// A component is a symlink or not a directory (or cannot be opened): never followed.
        case blocked
    }

    private let directory: String
    /// Opened directories by relative path ("" is the home itself).
    private var directories: [PathKey: Directory] = [:]

    /// - Parameter directory: the home's path on the host (under the root).
    init(directory: String) { self.directory = directory }

    /// Paths already looked up (a home has a dozen watched paths; a few are watched twice).
    private var seen: [PathKey: PathState] = [:]

    /// The state of `relative` (no `.` or `..` components; those read as absent).
    /// With `readContent`, a regular file's bytes (at most 4 MiB) are read too, through `openat(2)` with
    /// `O_NOFOLLOW | O_NONBLOCK` from the parent directory the walk opened (never a link, never blocking on a FIFO),
    /// and `fstat` on what was opened must be that same regular file.
    mutating func state(relative: String, readContent: Bool = false) -> PathState {
        let key = PathKey(relative)
        if let known = seen[key], !readContent || known.kind != .file || known.content != nil { return known }
        let found = lookUp(relative: relative, readContent: readContent)
        seen[key] = found
        return found
    }

    private mutating func lookUp(relative: String, readContent: Bool) -> PathState {
        guard let (parent, last) = Self.split(Substring(relative)) else { return .absent }
        switch dir(parent) {
        case .absent: return .absent
        case .blocked:
            var blocked = PathState(kind: .other)
            blocked.blocked = true
            return blocked
        case .open(let fd):
            var st = stat()
            let name = String(last)
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
            var result = Observer.pathState(st)
            result.linkCount = Int(st.st_nlink)
            if result.kind == .symlink {
                result.linkTarget = Observer.linkTarget(fd, name)
            }
            if readContent && result.kind == .file && st.st_size <= 4 << 20 {
                let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                if file >= 0 {
                    defer { close(file) }
                    var opened = stat()
                    if fstat(file, &opened) == 0, opened.st_ino == st.st_ino, opened.st_dev == st.st_dev,
                        opened.st_mode & S_IFMT == S_IFREG
                    {
                        result.content = Observer.readToEnd(fd: file, size: Int(opened.st_size))
                    }
                }
            }
            return result
        }
    }

    /// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`). nil when a component is empty, `.` or `..` (read as absent).
    private static func split(_ relative: Substring) -> (Substring, Substring)? {
        // By byte offset over the contiguous bytes of a native string: a walk with UTF8View indices costs ten times
        // as much, and this runs for every path below every home.
        func offsets(_ b: UnsafeBufferPointer<UInt8>) -> (end: Int, slash: Int) {
            var end = b.count
            while end > 0 && b[end - 1] == UInt8(ascii: "/") { end -= 1 }
            var slash = end - 1
            while slash >= 0 && b[slash] != UInt8(ascii: "/") { slash -= 1 }
            return (end, slash)
        }
        let u = relative.utf8
        let (end, slash) = u.withContiguousStorageIfAvailable(offsets) ?? Array(u).withUnsafeBufferPointer(offsets)
        let at = { (offset: Int) in u.index(u.startIndex, offsetBy: offset) }
        let name = relative[at(slash + 1)..<at(end)]
        let parent = relative[u.startIndex..<at(max(slash, 0))]
        let n = name.utf8
        guard !n.isEmpty, !n.allSatisfy({ $0 == UInt8(ascii: ".") }) || n.count > 2 else { return nil }
        return (parent, name)
    }

    /// The home as its own directory was opened (`fstat(2)` of the descriptor: `lstat` of the home, since
    /// `O_NOFOLLOW` refused a link); nil when it is not a directory that opens (look it up another way).
    mutating func homeState() -> PathState? {
        guard case .open(let fd) = dir(""[...]) else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return Observer.pathState(st)
    }

    /// The directory at `relative` below the home (`` is the home), opened once.
    private mutating func dir(_ relative: Substring) -> Directory {
        let key = PathKey(String(relative))
        if let known = directories[key] { return known }
        let found: Directory
        if !relative.isEmpty {
            guard let (parent, name) = Self.split(relative) else {
                directories[key] = .absent
                return .absent
            }
            switch dir(parent) {
            case .absent: found = .absent
            case .blocked: found = .blocked
            case .open where seen[key]?.kind == .absent:
                found = .absent  // looked up a moment ago (`~/.kube` before `~/.kube/config`)
            case .open(let parent):
                let fd = openat(parent, String(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                // ENOENT: truly absent. A symlink or a file on the way: blocked, never followed.
                found = fd >= 0 ? .open(fd) : (errno == ENOENT ? .absent : .blocked)
            }
        } else {
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            found = fd >= 0 ? .open(fd) : .absent
        }
        directories[key] = found
        return found
    }

    /// Closes every directory opened.
    mutating func closeAll() {
        for case .open(let fd) in directories.values { close(fd) }
        directories = [:]
    }
}
