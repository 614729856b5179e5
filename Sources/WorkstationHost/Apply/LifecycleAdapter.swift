import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// The adapters behind the lifecycle actions (offboarding stages, cutover, rollback, reinstatement), each a thin
/// wrapper over the real tool or a `HomeWriter` operation. Called by `Executor.run`.
final class LifecycleAdapter {
    let root: HostRoot
    let runner: any CommandRunner
    let systemdRunning: Bool
    let homes: HomeWriter
    /// os_user -> the verified archive the last `archiveHome` wrote.
    private(set) var archives: [String: OffboardingRecord.Archive] = [:]

    private let accounts: AccountLookup

    init(root: HostRoot, runner: any CommandRunner, systemdRunning: Bool, accounts: AccountLookup) {
        self.accounts = accounts
        self.root = root
        self.runner = runner
        self.systemdRunning = systemdRunning
        self.homes = HomeWriter(root: root)
    }

    private var prefix: [String] { root.isSystem ? [] : ["--prefix", root.directory] }

    private func account(_ user: String) throws -> PasswdEntry {
        guard let p = accounts.entry(user) else {
            throw ApplyError.noAccount(user)
        }
        return p
    }

    /// (home, path relative to it, the account as home owner).
    private func locate(_ user: String, _ path: String) throws -> (String, String, HomeWriter.Owner) {
        let a = try account(user)
        let pre = a.home.hasSuffix("/") ? a.home : a.home + "/"
        guard path.hasPrefix(pre) else { throw ApplyError.outsideHome(user: user, path: path) }
        return (a.home, String(path.dropFirst(pre.count)), HomeWriter.Owner(uid: a.uid, gid: a.gid))
    }

    /// `systemctl disable --now --no-reload UNIT` where systemd runs, else `systemctl --root=DIR disable UNIT` (unit
    /// files only). Idempotent: disabling a disabled unit succeeds. `--no-reload` (systemctl(1)): removing the
    /// `.wants/` link needs no reload of the manager, which costs seconds on a host with a thousand units loaded.
    func disableUnit(_ name: String) throws {
        if systemdRunning {
            try runner.check(["systemctl", "disable", "--now", "--no-reload", name])
        } else {
            try runner.check(["systemctl", "--root=\(root.directory)", "disable", name])
        }
    }

    /// `loginctl disable-linger USER` where systemd runs (logind removes its linger file); elsewhere the file
    /// `/var/lib/systemd/linger/USER` under the root is removed (what logind reads at boot). Idempotent.
    func disableLinger(_ user: String) throws {
        if systemdRunning {
            try runner.check(["loginctl", "disable-linger", user])
        } else if unlink(root.path(joinPath(Self.lingerDirectory, user))) != 0 && errno != ENOENT {
            throw FileWriteError(
                path: root.path(joinPath(Self.lingerDirectory, user)),
                operation: "unlink",
                errno: errno
            )
        }
    }

    /// Where logind records lingering users (`loginctl(1)` enable-linger).
    static let lingerDirectory = "/var/lib/systemd/linger"

    /// Ends every process of `user` (uid `uid`): `loginctl terminate-user` first where systemd runs (sessions and
    /// the user manager, so nothing restarts them; "not logged in" is not an error), then `ProcessReaper`.
    /// Only on the live root: under a `--root` prefix the processes of this machine belong to nobody in the
    /// prefix, so this throws rather than touch them.
    /// - Throws: `LifecycleError.notLiveRoot`, `LifecycleError.processesRemain`.
    func endProcesses(_ user: String, uid: Int) throws {
        guard root.isSystem else { throw LifecycleError.notLiveRoot(root.directory) }
        if systemdRunning { _ = try? runner.run(["loginctl", "terminate-user", user]) }
        ended[user, default: []] += try ProcessReaper(procs: ProcReader(root: root)).endAll(uid: uid)
    }

    /// os_user -> the processes `endProcesses` signalled.
    private(set) var ended: [String: [OwnedProcess]] = [:]

    /// `usermod [-L] --expiredate 1 USER` (`usermod(8)`): day 1 is in the past, so every login, keys included, stops.
    func restrictLogin(_ user: String, lock: Bool) throws {
        try runner.check(["usermod"] + prefix + (lock ? ["-L"] : []) + ["--expiredate", "1", user])
    }

    /// `usermod [-U] --expiredate DAYS|'' USER`: an empty date removes the expiry (`usermod(8)`).
    func restoreLogin(_ user: String, unlock: Bool, expireDays: Int?) throws {
        try runner.check(
            ["usermod"] + prefix + (unlock ? ["-U"] : []) + ["--expiredate", expireDays.map(String.init) ?? "", user]
        )
    }

    /// `usermod -r -G GROUP USER` (shadow 4.13 `-r, --remove`): edits `group` and `gshadow` under the prefix.
    func removeMembership(_ user: String, _ group: String) throws {
        try runner.check(["usermod"] + prefix + ["-r", "-G", group, user])
    }

    func removeHomeEntry(_ user: String, _ path: String, onlySymlink: Bool) throws {
        let (home, rel, owner) = try locate(user, path)
        try homes.removeEntry(home: home, relative: rel, owner: owner, onlySymlink: onlySymlink)
    }

    func rewriteHomeFile(_ user: String, _ path: String, _ content: Data, uid: Int?, gid: Int?, mode: UInt32?) throws {
        let (home, rel, owner) = try locate(user, path)
        let fileOwner = uid.map { HomeWriter.Owner(uid: $0, gid: gid ?? $0) }
        try homes.replaceFile(
            home: home,
            relative: rel,
            content: content,
            owner: owner,
            fileOwner: fileOwner,
            mode: mode.map { mode_t($0) }
        )
    }

    func placeHomeLink(_ user: String, _ path: String, target: String, uid: Int, gid: Int) throws {
        let (home, rel, owner) = try locate(user, path)
        try homes.replaceSymlink(
            home: home,
            relative: rel,
            target: target,
            owner: owner,
            linkOwner: HomeWriter.Owner(uid: uid, gid: gid)
        )
    }

    func moveHomeEntryOut(_ user: String, _ path: String, toDirectory: String) throws {
        let (home, rel, owner) = try locate(user, path)
        try FileManager.default.createDirectory(
            atPath: root.path(toDirectory),
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        do {
            try homes.moveOut(
                home: home,
                relative: rel,
                owner: owner,
                directory: toDirectory,
                newName: (rel as NSString).lastPathComponent
            )
        } catch HomeWriteError.system(_, _, EXDEV) {
            throw HomeWriteError.refused(
                path,
                "it is on another file system than \(toDirectory); move it aside by hand, then run again"
            )
        }
    }

    /// Archives the home with `tar --numeric-owner --acls --xattrs -cpzf` (GNU tar 1.34) into a 0600 file, then
    /// verifies it: `tar -tzf` must list as many entries as the home holds (sockets excepted, tar skips them), the
    /// size must be non-zero and unchanged, and a second `sha256sum` must equal the first. Writes `ARCHIVE.sha256`.
    /// - Throws: `LifecycleError.archiveUnverified` naming what did not match (the account is then not deleted).
    func archiveHome(_ user: String, home: String, archive: String) throws {
        let dir = (archive as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: root.path(dir),
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let full = root.path(archive)
        let partial = full + ".partial"
        let parent = root.path((home as NSString).deletingLastPathComponent)
        let name = (home as NSString).lastPathComponent
        defer { unlink(partial) }
        try runner.check(["tar", "--numeric-owner", "--acls", "--xattrs", "-cpzf", partial, "-C", parent, name])
        guard chmod(partial, 0o600) == 0, rename(partial, full) == 0 else {
            throw FileWriteError(path: full, operation: "place archive", errno: errno)
        }
        let listed = try runner.check(["tar", "--numeric-owner", "-tzf", full]).stdout.split(separator: "\n")
        let expected = countEntries(root.path(home)) + 1
        guard listed.count == expected, listed.first.map({ $0 == "\(name)/" }) == true else {
            throw LifecycleError.archiveUnverified(
                archive: full,
                why: "it lists \(listed.count) entries, the home holds \(expected)"
            )
        }
        func sha() throws -> String { String(try runner.check(["sha256sum", "-b", full]).stdout.prefix(64)) }
        let size1 = fileSize(full)
        let first = try sha()
        try writeFileAtomically(
            Data("\(first) *\((archive as NSString).lastPathComponent)\n".utf8),
            to: full + ".sha256",
            mode: 0o600
        )
        let second = try sha()
        let size2 = fileSize(full)
        guard size1 > 0, size1 == size2, first.count == 64, first == second else {
            throw LifecycleError.archiveUnverified(
                archive: full,
                why: "size \(size1) then \(size2), sha256 \(first) then \(second)"
            )
        }
        archives[user] = OffboardingRecord.Archive(
            time: Date().timeIntervalSince1970.rounded(),
            path: archive,
            bytes: size1,
            sha256: first,
            entries: listed.count
        )
    }

    /// `userdel --remove USER` (`userdel(8)`): deletes the account, its private group, its home and mail spool.
    func deleteAccount(_ user: String) throws {
        try runner.check(["userdel"] + prefix + ["--remove", user])
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return lstat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// Entries below `dir` (not counting it), never following links; sockets are not counted.
    private func countEntries(_ dir: String) -> Int {
        var n = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            let p = dir + "/" + name
            var st = stat()
            guard lstat(p, &st) == 0 else { continue }
            let fmt = st.st_mode & S_IFMT
            if fmt == S_IFSOCK { continue }
            n += 1
            if fmt == S_IFDIR { n += countEntries(p) }
        }
        return n
    }
}

/// Ends every process of one uid with SIGKILL (`kill(2)`), reading `/proc` again after each round, until none is
/// left: a process that forks while being killed leaves a child the next round finds. Never signals uid 0, nor
/// this process. Each pid is checked again just before its signal, so a pid reused by another account in between
/// is left alone (a window of microseconds remains: `kill(2)` takes a pid, not a process handle).
public struct ProcessReaper: Sendable {
    public let procs: ProcReader
    /// Rounds before giving up, and the pause between them (microseconds).
    public var rounds = 200
    public var pause: UInt32 = 10_000

    public init(procs: ProcReader) { self.procs = procs }

    /// - Returns: every process signalled, in the order it was.
    /// - Throws: `LifecycleError.processesRemain` when processes are still there after every round.
    public func endAll(uid: Int) throws -> [OwnedProcess] {
        guard uid > 0 else { throw LifecycleError.processesRemain(uid: uid, left: ["refused: uid 0 is root"]) }
        var signalled: [OwnedProcess] = []
        let me = Int(getpid())
        for _ in 0..<rounds {
            let left = procs.processes(ownedBy: uid).filter { $0.pid != me }
            if left.isEmpty { return signalled }
            for p in left {
                guard
                    let now = readPseudoFile(procs.root.path("/proc/\(p.pid)/status")).flatMap({
                        OwnedProcess.parse(pid: p.pid, status: $0)
                    }),
                    now.matches(uid), !procs.isDead(now)
                else { continue }
                if kill(pid_t(p.pid), SIGKILL) == 0, !signalled.contains(where: { $0.pid == p.pid }) {
                    signalled.append(p)
                }
            }
            usleep(pause)
        }
        let left = procs.processes(ownedBy: uid).filter { $0.pid != me }
        if left.isEmpty { return signalled }
        throw LifecycleError.processesRemain(uid: uid, left: left.map { "\($0.pid) (\(printable($0.name)))" })
    }
}

/// Errors of the lifecycle commands.
public enum LifecycleError: Error, CustomStringConvertible {
    case archiveUnverified(archive: String, why: String)
    case notManaged(String)
    case noAccount(String)
    case stageOrder(user: String, stage: OffboardStage, missing: OffboardStage)
    case confirm(user: String, given: String?)
    case noCutover(String)
    case notInRoster(String)
    case stepsFailed([String])
    case notLiveRoot(String)
    case processesRemain(uid: Int, left: [String])
    case onePersonAtATime(OffboardStage)

    public var description: String {
        switch self {
        case .archiveUnverified(let a, let why):
            "the archive \(a) did not verify (\(why)); the account was not deleted; check the disk and run the archive stage again"
        case .notManaged(let u):
            "workstation does not manage an account '\(u)' (not in its state); only accounts it provisioned or adopted are offboarded"
        case .noAccount(let u): "account '\(u)' does not exist on this host"
        case .stageOrder(let u, let s, let m):
            "stage \(s.rawValue) needs stage \(m.rawValue) first; run: workstation offboard \(u) --stage \(m.rawValue)"
        case .confirm(let u, let g):
            g == nil
                ? "the archive stage deletes \(u)'s account and home; add --confirm \(u) to go ahead"
                : "--confirm '\(g!)' does not match the user '\(u)'; type the os_user exactly"
        case .noCutover(let u): "no cutover of '\(u)' is recorded (or it was already rolled back); nothing to roll back"
        case .notInRoster(let u):
            "'\(u)' is not a provisioned user in the roster placed on this host; cutover moves an existing roster user's account here onto the new model"
        case .notLiveRoot(let d): "processes are ended only on the live root /, never under the root \(d)"
        case .processesRemain(let uid, let left):
            "processes of uid \(uid) are still running after repeated SIGKILL: \(left.joined(separator: ", ")); check them (ps -o pid,stat,cmd -u \(uid)) and run the cut again"
        case .onePersonAtATime(let stage):
            "stage \(stage.rawValue) takes one os_user at a time; run it once for each person (stage cut takes many)"
        case .stepsFailed(let lines):
            "some steps failed; what ran is in the journal:\n" + lines.map { "  \($0)" }.joined(separator: "\n")
        }
    }
}
