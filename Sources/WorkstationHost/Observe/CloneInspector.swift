import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// One person's infra clone, as `status`, `doctor` and `clone-status` report it.
public struct CloneStatus: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Codable {
        /// The clone workstation made is there.
        case present
        /// Something else is there (a symlink, a file, a directory workstation did not clone); left alone.
        case kept
        /// Nothing is there: apply will clone.
        case missing
        /// No clone source is configured for this person.
        case off
    }
    public var user: String
    /// Host path, e.g. `/home/alice/code`.
    public var path: String
    public var state: State
    /// True only for a present clone whose git-crypt filter passes ciphertext through, which holds no
    /// git-crypt key, and whose guard hook is installed and executable.
    public var lockedVerified: Bool
    /// What was found, in words.
    public var detail: String

    /// `alice: /home/alice/code present, locked state verified`.
    /// One line for people: each value escaped and kept on the line (`printable`: a link target or a git message may
    /// hold control characters or a newline).
    public var line: String {
        let head = "\(printable(user)): \(printable(path)) \(state.rawValue)"
        switch state {
        case .present:
            return head + (lockedVerified ? ", locked state verified" : ", NOT verified locked: \(printable(detail))")
        default: return head + " (\(printable(detail)))"
        }
    }
}

/// Reads a person's clone state from files only (never runs git, never follows a link: every component is
/// opened with `openat(2)` `O_NOFOLLOW` from the home's descriptor, the way `HomeWriter` walks).
///
/// A clone is workstation's when its `.git/config` carries `workstation.lockedClone = true`; it is verified
/// locked when that config sets `filter.git-crypt.smudge = cat` and not `required = true`, no key is under
/// `.git/git-crypt/keys/` (where `git-crypt unlock` puts it), and `.git/hooks/pre-commit` is the guard hook.
public struct CloneInspector: Sendable {
    public let root: HostRoot
    public let settings: Settings

    public init(root: HostRoot, settings: Settings) {
        self.root = root
        self.settings = settings
    }

    /// The state of every provisioned roster person (accounts that do not exist yet are `missing`).
    /// - Throws: `ObserveError` when the state file is unreadable.
    public func states(roster: Roster) throws -> [CloneStatus] {
        let (snapshot, desired) = try Observer(root: root, settings: settings).observe(roster: roster)
        return desired.users.map { u in
            state(
                user: u.osUser,
                home: u.home,
                uid: snapshot.account(u.osUser)?.uid ?? u.uid,
                configured: settings.infraRepo.source(for: u.entry) != nil
            )
        }
    }

    /// The state of one person's clone at `home/<infra_repo.directory>`.
    public func state(user: String, home: String, uid: Int, configured: Bool = true) -> CloneStatus {
        let directory = settings.infraRepo.directory
        let path = joinPath(home, directory)
        var status = CloneStatus(user: user, path: path, state: .missing, lockedVerified: false, detail: "")
        let homeFD = open(root.path(home), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard homeFD >= 0 else {
            status.detail = errno == ENOENT ? "no home yet; apply will clone" : "the home is not a plain directory"
            if !configured {
                status.state = .off
                status.detail = "no infra_repo.url or roster repo"
            }
            return status
        }
        defer { close(homeFD) }
        var st = stat()
        guard fstatat(homeFD, directory, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            if !configured {
                status.state = .off
                status.detail = "no infra_repo.url or roster repo"
            } else {
                var pst = stat()
                let leftover = fstatat(homeFD, settings.infraRepo.partialDirectory, &pst, AT_SYMLINK_NOFOLLOW) == 0
                status.detail =
                    leftover
                    ? "an interrupted clone is left in \(settings.infraRepo.partialDirectory); apply removes it and clones"
                    : "apply will clone"
            }
            return status
        }
        status.state = .kept
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlinkat(homeFD, directory, &buf, buf.count - 1)
            status.detail =
                "a symlink to \(n >= 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?")"
            return status
        case S_IFDIR: break
        default:
            status.detail = "not a directory"
            return status
        }
        guard let config = read(homeFD, [directory, ".git", "config"]) else {
            status.detail = "a directory workstation did not clone (no readable .git/config)"
            return status
        }
        let git = GitConfig(config)
        guard git.value("workstation", "lockedclone") == "true" else {
            status.detail = "a directory workstation did not clone"
            return status
        }
        status.state = .present
        var problems: [String] = []
        if st.st_uid != uid_t(uid) { problems.append("owned by uid \(st.st_uid), not \(uid)") }
        if git.value("filter \"git-crypt\"", "smudge") != "cat" {
            problems.append("the git-crypt smudge filter is not the pass-through `cat`")
        }
        if git.value("filter \"git-crypt\"", "required") == "true" {
            problems.append("the git-crypt filter is required")
        }
        var kst = stat()
        if walk(homeFD, [directory, ".git", "git-crypt", "keys"], &kst) {
            problems.append("a git-crypt key is present (.git/git-crypt/keys): unlocked")
        }
        var hst = stat()
        if !walk(homeFD, [directory, ".git", "hooks", "pre-commit"], &hst) {
            problems.append("the pre-commit guard hook is missing")
        } else if hst.st_mode & S_IFMT != S_IFREG || hst.st_mode & 0o111 == 0
            || !(read(homeFD, [directory, ".git", "hooks", "pre-commit"]).map {
                String(decoding: $0, as: UTF8.self).contains(InfraCloner.hookMarker)
            } ?? false)
        {
            problems.append("the pre-commit hook is not workstation's guard or not executable")
        }
        status.lockedVerified = problems.isEmpty
        status.detail =
            problems.isEmpty
            ? "filter passes ciphertext through, no key, guard hook installed" : problems.joined(separator: "; ")
        return status
    }

    // MARK: reading without following links

    /// `fstatat` of the last component after an `O_NOFOLLOW` walk; false when any step is missing or a link.
    private func walk(_ start: Int32, _ parts: [String], _ st: inout stat) -> Bool {
        guard let (fd, last) = parent(start, parts) else { return false }
        defer { if fd != start { close(fd) } }
        return fstatat(fd, last, &st, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// The bytes of a regular file (at most 1 MiB) reached without following a link.
    private func read(_ start: Int32, _ parts: [String]) -> Data? {
        guard let (dfd, last) = parent(start, parts) else { return nil }
        defer { if dfd != start { close(dfd) } }
        let fd = openat(dfd, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= 1 << 20 else { return nil }
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        return data
    }

    private func parent(_ start: Int32, _ parts: [String]) -> (Int32, String)? {
        var fd = start
        for comp in parts.dropLast() {
            let next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd != start { close(fd) }
            guard next >= 0 else { return nil }
            fd = next
        }
        return (fd, parts.last!)
    }
}

/// Just enough of `git-config(1)`'s file syntax to read a few keys: `[section "sub"]` headers, `key = value`
/// lines, comments. Section and key names compare case-insensitively (the subsection keeps its case).
struct GitConfig {
    private var values: [String: String] = [:]

    init(_ data: Data) {
        var section = ""
        for raw in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), let close = line.firstIndex(of: "]") {
                let inner = line[line.index(after: line.startIndex)..<close]
                if let q = inner.firstIndex(of: "\"") {
                    section = inner[..<q].trimmingCharacters(in: .whitespaces).lowercased() + " " + inner[q...]
                } else {
                    section = inner.lowercased()
                }
                continue
            }
            let parts = line.split(separator: "=", maxSplits: 1)
            let key = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
            var value = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "true"
            if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            values["\(section).\(key)"] = value
        }
    }

    /// The last value of `section.key`; `section` as `filter "git-crypt"` for a subsection.
    func value(_ section: String, _ key: String) -> String? { values["\(section).\(key.lowercased())"] }
}
