import Foundation

/// Everything the executor needs to clone one person's infra repository (Action.cloneInfraRepo).
///
/// `url` may carry credentials: it is never printed; `displayURL` is what plans, the journal and errors show.
public struct InfraCloneSpec: Sendable, Hashable, Codable {
    public var user: String
    /// The home as in `passwd(5)`, e.g. `/home/alice`.
    public var home: String
    /// The clone's name under the home, e.g. `code`.
    public var directory: String
    /// The hidden sibling the clone is made in, e.g. `.code.workstation-partial`.
    public var partialDirectory: String
    public var url: String
    /// nil: the remote's default branch.
    public var branch: String?

    public init(user: String, home: String, directory: String, partialDirectory: String, url: String, branch: String?) {
        self.user = user
        self.home = home
        self.directory = directory
        self.partialDirectory = partialDirectory
        self.url = url
        self.branch = branch
    }

    /// The URL with credentials hidden (`redactCredentials`).
    public var displayURL: String { redactCredentials(url) }
    /// `/home/alice/code`.
    public var target: String { joinPath(home, directory) }
}

extension Planner {
    /// The clone target, its partial sibling and the launcher, for users who get a clone.
    func infraWatchedPaths(_ u: DesiredUser) -> [WatchedPath] {
        let infra = settings.infraRepo
        guard infra.source(for: u.entry) != nil else { return [] }
        var paths = [
            WatchedPath(joinPath(u.home, infra.directory)), WatchedPath(joinPath(u.home, infra.partialDirectory)),
        ]
        if !infra.launcherPath.isEmpty { paths.append(WatchedPath(joinPath(u.home, infra.launcherPath))) }
        if let local = infra.source(for: u.entry).flatMap({ Self.localRepositoryPath($0.url) }) {
            paths += [
                WatchedPath(local), WatchedPath(joinPath(local, ".git")),
                WatchedPath(Self.systemGitConfig, readContent: true),
            ]
        }
        return paths
    }

    /// git's system-wide configuration (`git-config(1)`, "FILES": `$(prefix)/etc/gitconfig`, `/etc/gitconfig` on
    /// Debian), where `safe.directory` may list a repository every account may use.
    public static let systemGitConfig = "/etc/gitconfig"

    /// The repository directory of a clone source on this host: an absolute path, or a `file://` URL's path;
    /// nil for a network URL. A trailing `/` is dropped.
    public static func localRepositoryPath(_ url: String) -> String? {
        var path: Substring
        if url.hasPrefix("/") {
            path = Substring(url)
        } else if url.lowercased().hasPrefix("file://") {
            path = url.dropFirst(7)
        } else {
            return nil
        }
        while path.count > 1 && path.hasSuffix("/") { path = path.dropLast() }
        return path.hasPrefix("/") ? String(path) : nil
    }

    /// Why git, run as `u`, cannot clone the local repository at `path`, or nil: the directory is missing or not one;
    /// `u` cannot enter and read it (owner, group, other bits of the repository and its `.git`); or another account
    /// owns it and `/etc/gitconfig` does not list it under `safe.directory` (git 2.35.2+ refuses it: "detected
    /// dubious ownership", `git-config(1)` safe.directory; a clone runs `git-upload-pack` in the source as `u`).
    func localSourceProblem(_ path: String, _ u: DesiredUser, _ o: HostSnapshot) -> String? {
        let top = o.path(path)
        guard top.kind == .directory else {
            return top.kind == .absent
                ? "\(path) does not exist on this host"
                : "\(path) is a \(top.kind.rawValue), not a repository directory"
        }
        let gitDir = o.path(joinPath(path, ".git"))
        let dirs = gitDir.kind == .directory ? [(path, top), (joinPath(path, ".git"), gitDir)] : [(path, top)]
        let gids = Set(
            [u.uid] + o.groups.filter { $0.members.contains(u.osUser) }.map(\.gid)
                + u.groups.compactMap { o.group($0)?.gid }
        )
        for (dir, st) in dirs {
            let bits = st.uid == u.uid ? (st.mode >> 6) & 7 : gids.contains(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7
            if bits & 5 != 5 {
                return
                    "\(dir) (owner uid \(st.uid), mode \(octal(st.mode))) cannot be read by \(u.osUser); git clones as the person, never as root"
            }
        }
        let owner = (gitDir.kind == .directory ? gitDir : top).uid
        if owner != u.uid {
            let safe = Self.safeDirectories(o.path(Self.systemGitConfig).content)
            if !safe.contains("*") && !safe.contains(path) && !safe.contains(joinPath(path, ".git"))
                && !safe.contains(path + "/")
            {
                return
                    "\(path) is owned by uid \(owner), and git refuses a repository another account owns (detected dubious ownership); serve it over https://, ssh:// or git://, or trust it for every account: git config --system --add safe.directory \(path)"
            }
        }
        return nil
    }

    /// The `safe.directory` values of a git config file's `[safe]` sections (a plain reading: `key = value` lines,
    /// quotes and `#`/`;` comments stripped; enough for what `git config --system --add` writes).
    static func safeDirectories(_ data: Data?) -> Set<String> {
        guard let data else { return [] }
        var out: Set<String> = []
        var inSafe = false
        for raw in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                inSafe = line.lowercased().hasPrefix("[safe]")
                continue
            }
            guard inSafe, let eq = line.firstIndex(of: "="),
                line[..<eq].trimmingCharacters(in: .whitespaces).lowercased() == "directory"
            else { continue }
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if let c = value.firstIndex(where: { $0 == "#" || $0 == ";" }), !value.hasPrefix("\"") {
                value = String(value[..<c]).trimmingCharacters(in: .whitespaces)
            }
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            out.insert(value)
        }
        return out
    }

    /// The keyless infra clone at `~/code` (additive: only when nothing at all is there) and, for an account
    /// workstation creates, the launcher script (only if absent). Anything already at `~/code` (a symlink, a file,
    /// a directory) is kept; a link or file is noted, and `workstation clone-status` tells the rest.
    func infraCloneChanges(_ u: DesiredUser, _ o: HostSnapshot, into plan: inout Plan) {
        let infra = settings.infraRepo
        guard let source = infra.source(for: u.entry) else {
            let note =
                "infra clones are off: set infra_repo.url in workstation.yaml (or repo: for a person in the roster) to give non-admins a keyless clone at ~/\(infra.directory)"
            if !plan.notes.contains(note) { plan.notes.append(note) }
            return
        }
        // A missing or foreign home is reported by homeChanges; nothing is cloned into it.
        if u.accountExists && o.path(u.home).kind != .directory { return }
        let accountDep: [ResourceID] = u.accountExists ? [] : [.account(u.osUser)]
        let spec = InfraCloneSpec(
            user: u.osUser,
            home: u.home,
            directory: infra.directory,
            partialDirectory: infra.partialDirectory,
            url: source.url,
            branch: source.branch
        )
        let st = o.path(spec.target)
        var cloning = false
        switch st.kind {
        case .absent:
            if let local = Self.localRepositoryPath(source.url), let problem = localSourceProblem(local, u, o) {
                plan.changes.append(
                    Change(
                        id: .clone(spec.target),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .additive,
                        summary: "cannot clone \(spec.displayURL) into \(spec.target) as \(u.osUser): \(problem)",
                        reason:
                            "no clone and no launcher until the source is readable by the person; plan shows this before apply tries"
                    )
                )
                return
            }
            cloning = true
            var fields = [
                FieldChange("url", nil, spec.displayURL),
                FieldChange("branch", nil, source.branch ?? "(the remote's default)"),
            ]
            let partial = o.path(joinPath(u.home, infra.partialDirectory))
            if partial.kind != .absent {
                fields.append(
                    FieldChange(
                        "leftover",
                        "\(joinPath(u.home, infra.partialDirectory)) (an interrupted clone)",
                        "removed as \(u.osUser)"
                    )
                )
            }
            plan.changes.append(
                Change(
                    id: .clone(spec.target),
                    user: u.osUser,
                    kind: .create,
                    safety: .additive,
                    summary:
                        "clone \(spec.displayURL) into \(spec.target) as \(u.osUser) (keyless: git-crypt files stay encrypted)",
                    fields: fields,
                    action: .cloneInfraRepo(spec),
                    dependsOn: accountDep
                )
            )
        case .symlink:
            plan.notes.append("\(u.osUser): \(spec.target) is a symlink to \(st.linkTarget ?? "?"); kept, not cloned")
        case .directory:
            break  // ours or the user's own: either way kept; clone-status says which
        default:
            plan.notes.append("\(u.osUser): \(spec.target) is a \(st.kind.rawValue), not a clone; kept, not cloned")
        }

        let createdByUs = !u.accountExists || o.state.accounts[u.osUser]?.created == true
        // The launcher starts the agent in the clone: it is written with the clone (after it, skipped when the
        // clone fails) or beside one already there, never on its own.
        guard !infra.launcherPath.isEmpty, createdByUs, cloning || st.kind == .directory else { return }
        let launcher = joinPath(u.home, infra.launcherPath)
        guard o.path(launcher).kind == .absent else { return }
        let content = Data(infra.launcher(user: u.osUser, codePath: spec.target).utf8)
        plan.changes.append(
            Change(
                id: .file(launcher),
                user: u.osUser,
                kind: .create,
                safety: .additive,
                summary: "write launcher \(launcher) (starts the agent in \(spec.target))",
                fields: [FieldChange("mode", nil, "0755")],
                action: .createHomeFile(user: u.osUser, path: launcher, content: content, mode: 0o755),
                dependsOn: accountDep + (cloning ? [.clone(spec.target)] : [])
            )
        )
    }
}
