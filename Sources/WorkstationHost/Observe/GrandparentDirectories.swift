import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Paths outside homes, looked up relative to their grandparent directory, each directory opened once: a short
/// walk in the kernel instead of the whole path (under a root, every path is long). One per thread.
struct GrandparentDirectories {
    let observer: Observer
    /// By bytes: two spellings String takes as equal are two directories.
    private var open: [PathKey: Int32] = [:]

    init(observer: Observer) { self.observer = observer }

    mutating func state(_ w: WatchedPath) -> PathState {
        let (dir, relative) = HostPath(w.path).grandparentSplit
        let fd: Int32
        if let known = open[PathKey(dir)] {
            fd = known
        } else {
            fd = Glibc.open(observer.root.path(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            open[PathKey(dir)] = fd
        }
        return fd >= 0 ? observer.pathState(in: fd, relative, readContent: w.readContent) : .absent
    }

    mutating func closeAll() {
        for fd in open.values where fd >= 0 { close(fd) }
        open = [:]
    }
}
