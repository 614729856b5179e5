import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

extension Executor {
    /// Creates many accounts in one locked edit of the account databases: `systemd-sysusers(8)` (`--root=DIR` under
    /// a root prefix) with one `u NAME UID "COMMENT" HOME SHELL` line per person (the account, its private group of
    /// the same id, a locked password `!*` in `shadow(5)`) and one `m NAME GROUP` line per supplementary group
    /// (`sysusers.d(5)`), where `useradd(8)` per person rewrote and synced every account file each time (about 20
    /// disk flushes a person). Then each account gets the subordinate uid and gid ranges useradd would have given it
    /// (`allocateSubordinateIDs`: one `usermod`, where the host keeps `/etc/subuid`) and its home, made as
    /// `useradd -m` makes it: 0700, owned by the person, with the root's `/etc/skel` copied in (`makeHome`). Every
    /// account's intent is recorded (and synced) before the tool runs; a kill at any moment leaves intents the next
    /// apply settles against `/etc/passwd`, and a created account whose home is missing gets its ranges and its home
    /// from the next plan (`createHome`).
    ///
    /// Falls back to `useradd` per person (each failure naming its person) when the tool is not installed, when a
    /// field is not one sysusers takes as written, or when the batch fails; a person whose name is taken by a group,
    /// or whose uid by an account or group, goes to useradd too (which refuses, naming them, where sysusers would
    /// take the group over or pick another uid). sysusers gives an account another uid when the planned one is taken
    /// in the instant before it runs: that account fails, naming both uids.
    func createAccountsTogether(
        _ batch: [(index: Int, change: Change, spec: AccountSpec)],
        of count: Int,
        report: inout ApplyReport,
        notDone: inout Set<ResourceID>,
        progress: (String) -> Void
    ) {
        func oneByOne() {
            for a in batch {
                runOne(a.change, index: a.index, of: count, report: &report, notDone: &notDone, progress: progress)
            }
        }
        // What sysusers would take over where useradd refuses (an existing group of the person's name becomes their
        // primary group; a uid or gid in use makes it pick another): those people go to useradd, which fails naming them.
        let passwd = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data())
        let groups = AccountDatabase.group(root.read("/etc/group") ?? Data())
        let names = Set(passwd.map(\.name)).union(groups.map(\.name))
        let ids = Set(passwd.map(\.uid)).union(groups.map(\.gid))
        var taken = Set<Int>()
        let clash = batch.filter { a in
            defer { taken.insert(a.spec.uid) }
            return names.contains(a.spec.name) || ids.contains(a.spec.uid) || taken.contains(a.spec.uid)
        }
        if !clash.isEmpty {
            let rest = batch.filter { a in !clash.contains { $0.change.id == a.change.id } }
            for a in clash {
                runOne(a.change, index: a.index, of: count, report: &report, notDone: &notDone, progress: progress)
            }
            return rest.isEmpty
                ? () : createAccountsTogether(rest, of: count, report: &report, notDone: &notDone, progress: progress)
        }
        guard batch.count > 1, ProcessRunner.resolve("systemd-sysusers") != nil,
            let config = Self.sysusersConfig(batch.map(\.spec))
        else { return oneByOne() }
        progress(
            "[\(batch[0].index + 1)-\(batch[batch.count - 1].index + 1)/\(count)] create \(batch.count) accounts"
        )
        let before = state
        touchedUsers = Set(batch.map(\.spec.name))
        do {
            try intend(nil) { i in
                for a in batch {
                    i.accounts[a.spec.name] = .init(uid: a.spec.uid, created: true)
                    i.accountGroups[a.spec.name] = a.spec.groups
                }
            }
        } catch {
            for a in batch { fail(a.change, error, report: &report, notDone: &notDone) }
            return
        }
        let argv = ["systemd-sysusers"] + (root.isSystem ? [] : ["--root=\(root.directory)"]) + ["-"]
        guard (try? runner.check(argv, stdin: config)) != nil else {
            // Nothing was written (sysusers checks every line before it writes): one by one, each failure named.
            settled { i in
                for a in batch {
                    i.accounts[a.spec.name] = nil
                    i.accountGroups[a.spec.name] = nil
                }
            }
            return oneByOne()
        }
        for a in batch {
            let spec = a.spec
            guard let entry = accounts.entry(spec.name) else {
                fail(a.change, ApplyError.noAccount(spec.name), report: &report, notDone: &notDone)
                continue
            }
            state.accounts[spec.name] = .init(uid: entry.uid, created: true)
            state.addedMemberships[spec.name] = spec.groups
            do {
                guard entry.uid == spec.uid else {
                    throw AccountBatchError.uidTaken(spec.name, planned: spec.uid, got: entry.uid)
                }
                try allocateSubordinateIDs(spec.name, uid: entry.uid)
                try makeHome(spec.home, owner: HomeWriter.Owner(uid: entry.uid, gid: entry.gid))
                report.applied.append(a.change)
                journal?.record(a.change, result: "ok")
            } catch {
                fail(a.change, error, report: &report, notDone: &notDone)
            }
        }
        settled { i in
            for a in batch {
                i.accounts[a.spec.name] = nil
                i.accountGroups[a.spec.name] = nil
            }
        }
        if state != before, let persist = persistAfterChange ?? persist {
            do { try persist(state, touchedUsers) } catch {
                report.notes.append("cannot record state after creating \(batch.count) accounts: \(error)")
            }
        }
    }

    /// Gives the account `name` (uid `uid`) the subordinate uid and gid ranges `useradd(8)` gives a new account and
    /// `systemd-sysusers` does not (rootless containers map them through `newuidmap`): each only where useradd
    /// allocates it (shadow 4.13: the root's `/etc/subuid` or `/etc/subgid` exists, `SUB_UID_COUNT` or
    /// `SUB_GID_COUNT` in `login.defs(5)` is not 0, and `uid` is within `UID_MIN`-`UID_MAX`), and only when the account
    /// holds no range in that file yet. Each range is the lowest free run of `SUB_UID_COUNT` ids from `SUB_UID_MIN`
    /// to `SUB_UID_MAX` (login.defs; shadow's defaults 65536, 100000 and 600100000), as useradd searches for it.
    /// Written by one `usermod --add-subuids FIRST-LAST --add-subgids FIRST-LAST NAME` (`usermod(8)`), which locks
    /// and rewrites only those two files. Idempotent: an account with its ranges runs nothing.
    /// - Throws: `CommandError` from usermod; `AccountBatchError.noSubordinateRange` when no run of ids is free.
    func allocateSubordinateIDs(_ name: String, uid: Int) throws {
        let defs = root.read("/etc/login.defs")
        guard AccountDatabase.uidRange(loginDefs: defs).contains(uid) else { return }
        var args: [String] = []
        for (file, kind, flag) in [("/etc/subuid", "UID", "--add-subuids"), ("/etc/subgid", "GID", "--add-subgids")] {
            guard let data = root.read(file) else { continue }  // no such file: useradd allocates none
            let count = AccountDatabase.number(loginDefs: defs, Substring("SUB_\(kind)_COUNT")) ?? 65536
            guard count > 0 else { continue }
            let ranges = AccountDatabase.subordinateRanges(data)
            if ranges.contains(where: { $0.owner == name || $0.owner == String(uid) }) { continue }
            guard
                let first = AccountDatabase.firstFreeRange(
                    ranges,
                    min: AccountDatabase.number(loginDefs: defs, Substring("SUB_\(kind)_MIN")) ?? 100_000,
                    max: AccountDatabase.number(loginDefs: defs, Substring("SUB_\(kind)_MAX")) ?? 600_100_000,
                    count: count
                )
            else { throw AccountBatchError.noSubordinateRange(name, file: file, count: count) }
            args += [flag, "\(first)-\(first + count - 1)"]
        }
        guard !args.isEmpty else { return }
        try runner.check(["usermod"] + prefix + args + [name])
    }

    /// The sysusers lines for `specs`; nil when a field holds what `sysusers.d(5)` would read otherwise than
    /// written (quotes, backslashes, whitespace in a path, `:` or control characters), so useradd takes them.
    static func sysusersConfig(_ specs: [AccountSpec]) -> Data? {
        func plain(_ s: String, spaces: Bool) -> Bool {
            !s.isEmpty
                && s.unicodeScalars.allSatisfy { c in
                    c.value > 0x20 && c.value < 0x7F && c != "\"" && c != "\\" && c != ":" && c != "'"
                        || spaces && c == " "
                }
        }
        var out = ""
        for s in specs {
            guard plain(s.name, spaces: false), plain(s.home, spaces: false), plain(s.shell, spaces: false),
                s.comment.isEmpty || plain(s.comment, spaces: true), s.groups.allSatisfy({ plain($0, spaces: false) })
            else { return nil }
            out += "u \(s.name) \(s.uid) \"\(s.comment)\" \(s.home) \(s.shell)\n"
            for g in s.groups { out += "m \(s.name) \(g)\n" }
        }
        return Data(out.utf8)
    }

    /// Makes the home `useradd -m -K HOME_MODE=0700 -k /etc/skel` makes, so that a reader never sees half of it: a
    /// root-owned 0700 directory `.NAME.workstation-new` beside it, the root's `/etc/skel` copied in (files,
    /// directories and links, modes kept, each owned by the person), the directory given to the person, then renamed
    /// into place without replacing anything (`renameat2(RENAME_NOREPLACE)`). A home that exists already is taken
    /// over as useradd leaves it: a root-owned one is chowned (the directory alone), any other keeps its owner; both
    /// are tightened to 0700.
    /// - Throws: `HomeWriteError` naming the path.
    func makeHome(_ home: String, owner: HomeWriter.Owner) throws {
        var st = stat()
        if lstat(root.path(home), &st) == 0 {
            let rootOwned = st.st_mode & S_IFMT == S_IFDIR && st.st_uid == 0
            return try homes.secureHome(home: home, owner: owner, chown: rootOwned, mode: 0o700)
        }
        let parentPath = root.path((home as NSString).deletingLastPathComponent)
        let name = (home as NSString).lastPathComponent
        try FileManager.default.createDirectory(
            atPath: parentPath,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        let parent = open(parentPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard parent >= 0 else { throw HomeWriteError.system(parentPath, "open", errno) }
        defer { close(parent) }
        let staging = ".\(name).workstation-new"
        // A run killed while making it left one: it was never anyone's home.
        if fstatat(parent, staging, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            try? FileManager.default.removeItem(atPath: parentPath + "/" + staging)
        }
        guard mkdirat(parent, staging, 0o700) == 0 else { throw HomeWriteError.system(home, "mkdir", errno) }
        let dir = openat(parent, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { throw HomeWriteError.system(home, "open", errno) }
        defer { close(dir) }
        try Self.copySkeleton(root.path("/etc/skel"), into: dir, owner: owner, display: home)
        guard fchmod(dir, 0o700) == 0, fchown(dir, owner.uid, owner.gid) == 0 else {
            throw HomeWriteError.system(home, "chown", errno)
        }
        guard renameNoReplace(parent, staging, parent, name) == 0 else {
            throw HomeWriteError.system(home, "rename", errno)
        }
    }

    /// Copies the entries of the directory `skeleton` (root's, trusted) into the open directory `dir`: regular
    /// files by content, directories recursively, symlinks as links; modes kept, every entry owned by `owner`.
    static func copySkeleton(_ skeleton: String, into dir: Int32, owner: HomeWriter.Owner, display: String) throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: skeleton) else { return }
        for name in names.sorted() {
            let from = skeleton + "/" + name
            var st = stat()
            guard lstat(from, &st) == 0 else { continue }
            let mode = st.st_mode & 0o7777
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                guard let data = FileManager.default.contents(atPath: from) else { continue }
                let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw HomeWriteError.system(display + "/" + name, "create", errno) }
                defer { close(fd) }
                let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard written == data.count, fchown(fd, owner.uid, owner.gid) == 0, fchmod(fd, mode) == 0 else {
                    throw HomeWriteError.system(display + "/" + name, "write", errno)
                }
            case S_IFDIR:
                guard mkdirat(dir, name, 0o700) == 0 else {
                    throw HomeWriteError.system(display + "/" + name, "mkdir", errno)
                }
                let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw HomeWriteError.system(display + "/" + name, "open", errno) }
                defer { close(sub) }
                try copySkeleton(from, into: sub, owner: owner, display: display + "/" + name)
                guard fchown(sub, owner.uid, owner.gid) == 0, fchmod(sub, mode) == 0 else {
                    throw HomeWriteError.system(display + "/" + name, "chown", errno)
                }
            case S_IFLNK:
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: from) else { continue }
                guard symlinkat(target, dir, name) == 0,
                    fchownat(dir, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0
                else { throw HomeWriteError.system(display + "/" + name, "symlink", errno) }
            default:
                continue  // devices, FIFOs, sockets: useradd copies no such thing a home needs
            }
        }
    }
}

/// An account the batch could not create as planned.
enum AccountBatchError: Error, CustomStringConvertible {
    case uidTaken(String, planned: Int, got: Int)
    case noSubordinateRange(String, file: String, count: Int)
    var description: String {
        switch self {
        case .noSubordinateRange(let user, let file, let count):
            "no free run of \(count) subordinate ids is left in \(file) for \(user) (SUB_UID_MIN to SUB_UID_MAX and SUB_GID_MIN to SUB_GID_MAX in /etc/login.defs); widen the span or remove unused ranges, then run workstation apply again"
        case .uidTaken(let user, let planned, let got):
            "account \(user) was created with uid \(got) instead of \(planned) (the uid was taken while apply ran); remove it with userdel \(user) and run workstation apply again"
        }
    }
}

/// `renameat2(2)` with `RENAME_NOREPLACE` (glibc 2.28; looked up with `dlsym`, as Swift's Glibc module does not
/// export it); where it is missing, `renameat(2)` after checking that nothing is at the target.
func renameNoReplace(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) -> Int32 {
    if let f = renameat2Function { return f(fromDir, from, toDir, to, 1) }
    var st = stat()
    if fstatat(toDir, to, &st, AT_SYMLINK_NOFOLLOW) == 0 {
        errno = EEXIST
        return -1
    }
    return renameat(fromDir, from, toDir, to)
}

private let renameat2Function:
    (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
        guard let symbol = dlsym(nil, "renameat2") else { return nil }
        return unsafeBitCast(
            symbol,
            to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self
        )
    }()
