import Foundation
import Synchronization
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Makes a person's keyless, writable clone of the infra repository at `~/code` (spec section 5, ADR-0004).
///
/// Only when nothing at all is at the target (a symlink, file or directory there is kept). git runs as the user,
/// never as root: `setpriv(1)` drops to the account's numeric uid, gid and supplementary gids (numeric, so it works
/// under a `--root` whose accounts the real host does not know), with `--no-new-privs`. The clone is made in a
/// hidden sibling (`.code.workstation-partial`) and renamed into place by root with `renameat2(2)`
/// `RENAME_NOREPLACE` relative to the home's descriptor (opened `O_NOFOLLOW`, owner checked), so a failed or
/// killed clone never leaves a half-made `~/code`; the next run removes the leftover (as the user) and retries.
///
/// Keyless: the clone's own config sets `filter.git-crypt.smudge=cat`, `clean=cat`, `required=false`
/// (`git clone --config`, written before checkout), which wins over any global git-crypt filter, so checkout never
/// fails for lack of a key and protected files stay `\0GITCRYPT\0` blobs. A pre-commit hook refuses commits that
/// change a path marked `filter=git-crypt`. Credentials in the URL never reach argv (other users can read
/// `/proc/PID/cmdline`): git gets the bare URL and a `url.<with credentials>.insteadOf` rewrite through
/// `GIT_CONFIG_COUNT` in its environment, so the clone's `remote.origin.url` holds no credentials either.
///
/// Reused by the cutover: remove the `~/code` symlink, run apply, and this type makes the clone.
public struct InfraCloner: Sendable {
    public let root: HostRoot
    public let runner: any CommandRunner

    public init(root: HostRoot, runner: any CommandRunner) {
        self.root = root
        self.runner = runner
    }

    /// What a clone attempt did.
    public enum Outcome: Sendable, Equatable {
        case cloned
        /// Something was already at the target (or appeared during the clone); it is left as it was.
        case kept(String)
    }

    /// The numeric identity git runs as.
    public struct Identity: Sendable, Hashable {
        public var uid: Int
        public var gid: Int
        /// Supplementary gids from `group(5)` under the root.
        public var groups: [Int]
    }

    /// The account's uid, gid and supplementary gids, read from `passwd(5)` and `group(5)` under the root.
    /// - Throws: `InfraCloneError.noAccount`; `.refusedRoot` for uid or gid 0.
    public func identity(of user: String) throws -> Identity {
        guard let p = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data()).first(where: { $0.name == user })
        else {
            throw InfraCloneError.noAccount(user)
        }
        guard p.uid != 0, p.gid != 0 else { throw InfraCloneError.refusedRoot(user) }
        let groups = AccountDatabase.group(root.read("/etc/group") ?? Data()).filter { $0.members.contains(user) }.map(
            \.gid
        )
        return Identity(uid: p.uid, gid: p.gid, groups: groups.filter { $0 != 0 })
    }

    /// `setpriv --reuid=U --regid=G --groups=...|--clear-groups --no-new-privs --`: the argv prefix that runs a
    /// tool as the identity (`setpriv(1)`; needs no passwd entry on the real host).
    public static func dropPrivileges(_ id: Identity) -> [String] {
        [
            "setpriv", "--reuid=\(id.uid)", "--regid=\(id.gid)",
            id.groups.isEmpty ? "--clear-groups" : "--groups=\(id.groups.map(String.init).joined(separator: ","))",
            "--no-new-privs", "--",
        ]
    }

    /// Clones `spec` as its user. Idempotent: a present target is kept; a leftover partial clone is removed first.
    /// - Parameter progress: one line at a time (git's own lines included), credentials redacted.
    /// - Returns: `.cloned`, or `.kept` when the target exists.
    /// - Throws: `InfraCloneError` (git failed, with its redacted stderr; the partial clone is removed) or
    ///   `HomeWriteError` when the home is a link or not the user's.
    @discardableResult
    public func clone(
        _ spec: InfraCloneSpec,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> Outcome {
        let id = try identity(of: spec.user)
        let owner = HomeWriter.Owner(uid: id.uid, gid: id.gid)
        let homes = HomeWriter(root: root)
        let homefd = try homes.openHome(spec.home, owner: owner)
        defer { close(homefd) }
        if let kind = entryKind(homefd, spec.directory) { return .kept("\(spec.target) is a \(kind)") }
        let realHome = root.path(spec.home)
        let partialPath = joinPath(realHome, spec.partialDirectory)
        if entryKind(homefd, spec.partialDirectory) != nil {
            progress(
                "\(spec.user): removing \(joinPath(spec.home, spec.partialDirectory)) left by an interrupted clone"
            )
            try removeAsUser(partialPath, id, spec)
        }

        progress(
            "\(spec.user): cloning \(spec.displayURL)\(spec.branch.map { " (branch \($0))" } ?? "") into \(spec.target) as uid \(id.uid)"
        )
        let bare = redactCredentials(spec.url, replacement: "")
        var argv =
            Self.dropPrivileges(id) + ["git", "-C", realHome, "clone", "--progress", "--template=", "--no-hardlinks"]
        for c in Self.keylessConfig { argv += ["--config", c] }
        if let b = spec.branch { argv += ["--branch", b] }
        argv += ["--", bare, spec.partialDirectory]
        var env = [
            "HOME": realHome, "USER": spec.user, "LOGNAME": spec.user, "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        ]
        if bare != spec.url {
            env["GIT_CONFIG_COUNT"] = "1"
            env["GIT_CONFIG_KEY_0"] = "url.\(spec.url).insteadOf"
            env["GIT_CONFIG_VALUE_0"] = bare
        }
        let filter = ProgressFilter()
        let user = spec.user
        let result = try runner.stream(argv, environment: env) { piece in
            if let line = filter.pass(redactCredentials(piece)) { progress("\(user):   \(line)") }
        }
        guard result.status == 0 else {
            try? removeAsUser(partialPath, id, spec)
            throw InfraCloneError.gitFailed(
                user: spec.user,
                url: spec.displayURL,
                status: result.status,
                stderr: redactCredentials(result.stderr)
            )
        }
        do {
            // The clone is the user's; the hook goes in through the home-writer (O_NOFOLLOW walk, O_EXCL, fchown).
            guard entryKind(homefd, spec.partialDirectory, ownedBy: id.uid) == "directory" else {
                throw InfraCloneError.unexpected(
                    user: spec.user,
                    "git left no directory owned by the user at \(partialPath)"
                )
            }
            try homes.createFile(
                home: spec.home,
                relative: "\(spec.partialDirectory)/.git/hooks/pre-commit",
                content: Data(Self.preCommitHook.utf8),
                owner: owner,
                mode: 0o755,
                createParents: true
            )
        } catch {
            try? removeAsUser(partialPath, id, spec)
            throw error
        }
        let placed = try homes.renameNoReplace(
            home: spec.home,
            from: spec.partialDirectory,
            to: spec.directory,
            owner: owner
        )
        if !placed {
            try? removeAsUser(partialPath, id, spec)
            return .kept("\(spec.target) appeared during the clone")
        }
        progress(
            "\(spec.user): cloned into \(spec.target); git-crypt files stay encrypted, the pre-commit hook guards them"
        )
        return .cloned
    }

    /// The clone's own git config: a pass-through git-crypt filter, so checkout needs no key, and a marker that
    /// workstation made the clone (`CloneInspector` reads it).
    public static let keylessConfig = [
        "filter.git-crypt.smudge=cat", "filter.git-crypt.clean=cat", "filter.git-crypt.required=false",
        "workstation.lockedClone=true",
    ]

    /// First line after the shebang; `CloneInspector` recognises the hook by it.
    public static let hookMarker = "# workstation: keyless clone guard"

    /// `.git/hooks/pre-commit` (`githooks(5)`): refuses a commit that changes a path whose `filter` attribute is
    /// `git-crypt` (per `git check-attr`, from the staged and the working-tree `.gitattributes`), or that edits a
    /// `.gitattributes` which mentions git-crypt; names the paths. Without the key such a commit would store plain
    /// text where ciphertext belongs. Everything else commits normally.
    public static let preCommitHook = """
        #!/bin/sh
        \(hookMarker)
        # Installed by workstation. This clone has no git-crypt key: the protected files are ciphertext, and a commit
        # that changes one would store whatever is in the file unencrypted. Such commits are refused; every other
        # commit works as usual.
        if git rev-parse --verify -q HEAD >/dev/null 2>&1; then against=HEAD
        else against=$(git hash-object -t tree /dev/null); fi
        staged=$(git diff --cached --name-only --no-renames "$against") || exit 1
        [ -n "$staged" ] || exit 0
        protected=$( {
          printf '%s\\n' "$staged" | git check-attr --cached --stdin filter
          printf '%s\\n' "$staged" | git check-attr --stdin filter
        } | sed -n 's/: filter: git-crypt$//p' | sort -u )
        attrs=$(printf '%s\\n' "$staged" | while IFS= read -r p; do
          case "$p" in
            .gitattributes|*/.gitattributes)
              if git show "$against:$p" 2>/dev/null | grep -q 'git-crypt'; then printf '%s\\n' "$p"; fi ;;
          esac
        done)
        if [ -n "$protected$attrs" ]; then
          echo "workstation: commit refused: this clone has no git-crypt key, and it changes git-crypt protected paths:" >&2
          printf '%s\\n%s\\n' "$protected" "$attrs" | sed '/^$/d; s/^/  /' >&2
          echo "Their content would be committed unencrypted. Unstage them (git restore --staged PATH) and restore" >&2
          echo "the ciphertext (git checkout -- PATH); ask someone holding the key to change them." >&2
          exit 1
        fi
        exit 0

        """

    // MARK: helpers

    /// `rm -rf -- PATH` as the user: the user can only delete what is theirs, and root follows no link.
    private func removeAsUser(_ path: String, _ id: Identity, _ spec: InfraCloneSpec) throws {
        let r = try runner.run(
            Self.dropPrivileges(id) + ["rm", "-rf", "--", path],
            environment: ["HOME": root.path(spec.home)],
            stdin: nil
        )
        guard r.status == 0 else {
            throw InfraCloneError.cleanupFailed(
                user: spec.user,
                path: path,
                stderr: r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            )
        }
    }

    /// `fstatat(2)` without following: the kind of `name` in the directory, or nil when absent.
    private func entryKind(_ dirfd: Int32, _ name: String, ownedBy uid: Int? = nil) -> String? {
        var st = stat()
        guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        if let uid, st.st_uid != uid_t(uid) { return "entry owned by uid \(st.st_uid)" }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return "directory"
        case S_IFLNK: return "symlink"
        case S_IFREG: return "file"
        default: return "special file"
        }
    }
}

/// Lets git's `\r` progress meters through at 0, 25, 50, 75 and 100 percent per phase; other lines pass as they are.
final class ProgressFilter: Sendable {
    private let last = Mutex<[String: Int]>([:])

    func pass(_ line: String) -> String? {
        let text = line.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        guard let pct = text.range(of: #"\d{1,3}%"#, options: .regularExpression) else { return text }
        if text.hasSuffix("done.") || text.contains(", done") { return text }
        let phase = String(text[..<pct.lowerBound])
        let bucket = (Int(text[pct].dropLast()) ?? 0) / 25
        return last.withLock { seen in
            if seen[phase] == bucket { return nil }
            seen[phase] = bucket
            return text
        }
    }
}

/// Why a clone did not happen. Every URL in here is redacted.
public enum InfraCloneError: Error, CustomStringConvertible {
    /// What git said went wrong: its `fatal:` and `error:` lines (the reason; git's generic follow-ups such as
    /// "Could not read from remote repository" come after it), else its last four lines; at most eight, joined.
    static func gitReason(_ stderr: String) -> String {
        let lines = stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        .filter { !$0.isEmpty && !$0.hasPrefix("Cloning into") }
        let reasons = lines.filter { $0.hasPrefix("fatal:") || $0.hasPrefix("error:") }
        let shown = reasons.isEmpty ? Array(lines.suffix(4)) : Array(reasons.prefix(8))
        return shown.isEmpty ? "(git printed nothing)" : shown.map(printable).joined(separator: " | ")
    }

    case noAccount(String)
    case refusedRoot(String)
    case gitFailed(user: String, url: String, status: Int32, stderr: String)
    case cleanupFailed(user: String, path: String, stderr: String)
    case unexpected(user: String, String)

    public var description: String {
        switch self {
        case .noAccount(let u): "cannot clone for \(u): the account does not exist (its creation failed or was skipped)"
        case .refusedRoot(let u):
            "refused to clone for \(u): the account has uid or gid 0, and git never runs as root in a home"
        case .gitFailed(let u, let url, let status, let stderr):
            "git clone of \(url) for \(u) exited \(status): \(Self.gitReason(stderr)); nothing was left behind, fix the source (url, branch, access) and run apply again"
        case .cleanupFailed(let u, let path, let stderr):
            "cannot remove the partial clone \(path) of \(u): \(stderr); remove it by hand, then run apply again"
        case .unexpected(let u, let what): "clone for \(u) stopped: \(what); run apply again"
        }
    }
}

extension HomeWriter {
    /// Renames `from` to `to`, both directly in the home, never replacing anything at `to` (`renameat2(2)` with
    /// `RENAME_NOREPLACE`, relative to the home's `O_NOFOLLOW` descriptor; neither name is followed).
    /// - Returns: false when something is already at `to`.
    /// - Throws: `HomeWriteError.refused` for a linked or foreign home, `.system` on other errors.
    public func renameNoReplace(home: String, from: String, to: String, owner: Owner) throws -> Bool {
        for name in [from, to] where name.isEmpty || name.contains("/") || name == "." || name == ".." {
            throw HomeWriteError.refused(home + "/" + name, "not a plain name in the home")
        }
        let fd = try openHome(home, owner: owner)
        defer { close(fd) }
        guard let renameat2 = Self.renameat2 else {
            throw HomeWriteError.system(home + "/" + to, "renameat2 (not in this C library)", ENOSYS)
        }
        let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE
        if renameat2(fd, from, fd, to, renameNoReplace) != 0 {
            if errno == EEXIST || errno == ENOTEMPTY { return false }
            throw HomeWriteError.system(home + "/" + to, "rename", errno)
        }
        fsync(fd)
        return true
    }

    /// glibc's `renameat2` (2.28+); the Swift Glibc module does not export it, so it is looked up once.
    private static let renameat2:
        (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
            guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
            return unsafeBitCast(
                sym,
                to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self
            )
        }()
}
