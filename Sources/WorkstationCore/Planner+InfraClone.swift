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
        var paths = [WatchedPath(joinPath(u.home, infra.directory)), WatchedPath(joinPath(u.home, infra.partialDirectory))]
        if !infra.launcherPath.isEmpty { paths.append(WatchedPath(joinPath(u.home, infra.launcherPath))) }
        return paths
    }

    /// The keyless infra clone at `~/code` (additive: only when nothing at all is there) and, for an account
    /// workstation creates, the launcher script (only if absent). Anything already at `~/code` (a symlink, a file,
    /// a directory) is kept; a link or file is noted, and `workstation clone-status` tells the rest.
    func infraCloneChanges(_ u: DesiredUser, _ o: HostSnapshot, into plan: inout Plan) {
        let infra = settings.infraRepo
        guard let source = infra.source(for: u.entry) else {
            let note = "infra clones are off: set infra_repo.url in workstation.yaml (or repo: for a person in the roster) to give non-admins a keyless clone at ~/\(infra.directory)"
            if !plan.notes.contains(note) { plan.notes.append(note) }
            return
        }
        // A missing or foreign home is reported by homeChanges; nothing is cloned into it.
        if u.accountExists && o.path(u.home).kind != .directory { return }
        let accountDep = u.accountExists ? [] : ["account:\(u.osUser)"]
        let spec = InfraCloneSpec(user: u.osUser, home: u.home, directory: infra.directory, partialDirectory: infra.partialDirectory,
                                  url: source.url, branch: source.branch)
        let st = o.path(spec.target)
        switch st.kind {
        case .absent:
            var fields = [FieldChange("url", nil, spec.displayURL), FieldChange("branch", nil, source.branch ?? "(the remote's default)")]
            let partial = o.path(joinPath(u.home, infra.partialDirectory))
            if partial.kind != .absent {
                fields.append(FieldChange("leftover", "\(joinPath(u.home, infra.partialDirectory)) (an interrupted clone)", "removed as \(u.osUser)"))
            }
            plan.changes.append(Change(
                id: "clone:\(spec.target)", user: u.osUser, kind: .create, safety: .additive,
                summary: "clone \(spec.displayURL) into \(spec.target) as \(u.osUser) (keyless: git-crypt files stay encrypted)",
                fields: fields, action: .cloneInfraRepo(spec), dependsOn: accountDep))
        case .symlink:
            plan.notes.append("\(u.osUser): \(spec.target) is a symlink to \(st.linkTarget ?? "?"); kept, not cloned")
        case .directory:
            break  // ours or the user's own: either way kept; clone-status says which
        default:
            plan.notes.append("\(u.osUser): \(spec.target) is a \(st.kind.rawValue), not a clone; kept, not cloned")
        }

        let createdByUs = !u.accountExists || o.state.accounts[u.osUser]?.created == true
        guard !infra.launcherPath.isEmpty, createdByUs else { return }
        let launcher = joinPath(u.home, infra.launcherPath)
        guard o.path(launcher).kind == .absent else { return }
        let content = Data(infra.launcher(user: u.osUser, codePath: spec.target).utf8)
        plan.changes.append(Change(
            id: "file:\(launcher)", user: u.osUser, kind: .create, safety: .additive,
            summary: "write launcher \(launcher) (starts the agent in \(spec.target))",
            fields: [FieldChange("mode", nil, "0755")],
            action: .createHomeFile(user: u.osUser, path: launcher, content: content, mode: 0o755), dependsOn: accountDep))
    }
}
