import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// One apply at a time: an exclusive `flock(2)` on `<state dir>/lock`, held for the life of the value.
public final class RunLock: @unchecked Sendable {
    private let fd: Int32

    /// Waits up to `timeout` seconds for the lock.
    /// - Throws: `ValidationFailure` when a path of the settings is unsafe on this host (`settingsPathDiagnostics`:
    ///   the state directory through a link...), before anything is created; `LockError.busy` when another run
    ///   holds it after the wait.
    public init(root: HostRoot, settings: Settings, timeout: Double) throws {
        let unsafe = Observer(root: root, settings: settings).settingsPathDiagnostics()
        if !unsafe.isEmpty { throw ValidationFailure(unsafe) }
        let dir = root.path(settings.stateDirectory)
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let path = dir + "/lock"
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileWriteError(path: path, operation: "open", errno: errno) }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                close(fd)
                throw LockError.busy(path: path, waited: timeout)
            }
            usleep(50_000)
        }
    }

    /// True when the lock file exists (a run has happened on this host); taking the lock then creates nothing.
    public static func exists(root: HostRoot, settings: Settings) -> Bool {
        var st = stat()
        return lstat(root.path(settings.stateDirectory) + "/lock", &st) == 0
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

public enum LockError: Error, CustomStringConvertible {
    case busy(path: String, waited: Double)
    public var description: String {
        switch self {
        case .busy(let path, let waited):
            "another workstation run holds \(path) (waited \(Int(waited)) s); let it finish, then run again"
        }
    }
}
