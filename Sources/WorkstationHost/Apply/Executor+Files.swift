import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// A root-owned file written to its temp name beside the target, not yet renamed over it.
struct StagedFile {
    var index: Int
    var change: Change
    var target: String
    var temp: String
}

extension Executor {
    /// Writes consecutive `writeFile` changes together, keeping `writeFileAtomically`'s promise (a reader or a
    /// crash, power loss included, sees each file's old or new version) at two flushes for the whole group instead
    /// of two `fsync(2)`s per file: each file is written to a temp name in its directory; `syncfs(2)` puts every
    /// temp on disk; each temp is renamed over its target (and journaled); a second `syncfs` puts the renames on
    /// disk. A file that cannot be written or renamed fails alone, naming its path; the others go on. A run killed
    /// in between leaves temp files (`.NAME.tmp.PID`, which systemd and the derived files' readers ignore) and the
    /// targets not yet renamed as they were; the next apply writes those again.
    func writeFilesTogether(
        _ files: [(index: Int, change: Change, path: String, content: Data, mode: UInt32)],
        of count: Int,
        report: inout ApplyReport,
        notDone: inout Set<ResourceID>,
        progress: (String) -> Void
    ) {
        var staged: [StagedFile] = []
        for f in files {
            progress("[\(f.index + 1)/\(count)] \(f.change.summary)")
            do {
                let target = root.path(f.path)
                staged.append(
                    StagedFile(
                        index: f.index,
                        change: f.change,
                        target: target,
                        temp: try Self.stage(f.content, beside: target, mode: f.mode)
                    )
                )
            } catch {
                fail(f.change, error, report: &report, notDone: &notDone)
            }
        }
        guard !staged.isEmpty else { return }
        let filesystems = Self.syncFilesystems(of: staged.map { ($0.target as NSString).deletingLastPathComponent })
        for s in staged {
            guard rename(s.temp, s.target) == 0 else {
                let e = errno
                unlink(s.temp)
                fail(
                    s.change,
                    FileWriteError(path: s.target, operation: "rename", errno: e),
                    report: &report,
                    notDone: &notDone
                )
                continue
            }
            if case .writeFile(let path, _, _)? = s.change.action, path.hasPrefix("/etc/systemd/") {
                unitFilesDirty = true
            }
            report.applied.append(s.change)
            journal?.record(s.change, result: "ok")
        }
        for fd in filesystems {
            syncFilesystem(fd)
            close(fd)
        }
    }

    /// Writes `data` to `.NAME.tmp.PID` beside `target` (mode `mode`, parents created `0755`), without syncing.
    /// - Returns: the temp file's path.
    /// - Throws: `FileWriteError` naming the target.
    static func stage(_ data: Data, beside target: String, mode: UInt32) throws -> String {
        let dir = (target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        let tmp = "\(dir)/.\((target as NSString).lastPathComponent).tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw FileWriteError(path: target, operation: "create \(tmp)", errno: errno) }
        defer { close(fd) }
        var failure: FileWriteError?
        data.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 {
                    failure = FileWriteError(path: target, operation: "write", errno: errno)
                    return
                }
                off += n
            }
        }
        if failure == nil && fchmod(fd, mode_t(mode)) != 0 {
            failure = FileWriteError(path: target, operation: "fchmod", errno: errno)
        }
        if let failure {
            unlink(tmp)
            throw failure
        }
        return tmp
    }

    /// `syncfs(2)` once for each file system that holds one of `directories`; returns an open descriptor on each,
    /// to sync again after the renames.
    static func syncFilesystems(of directories: [String]) -> [Int32] {
        var seen = Set<UInt64>()
        var fds: [Int32] = []
        for dir in directories {
            var st = stat()
            guard stat(dir, &st) == 0, seen.insert(UInt64(st.st_dev)).inserted else { continue }
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            syncFilesystem(fd)
            fds.append(fd)
        }
        return fds
    }
}

/// `syncfs(2)` of the file system holding `fd` (glibc 2.14; Swift's Glibc module does not export it, so it is looked
/// up once with `dlsym`); `sync(2)`, every file system, where it cannot be found.
func syncFilesystem(_ fd: Int32) {
    if let f = syncfsFunction { _ = f(fd) } else { sync() }
}

private let syncfsFunction: (@convention(c) (Int32) -> Int32)? = {
    guard let symbol = dlsym(nil, "syncfs") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
}()
