import Foundation

/// The `infra_repo:` section of `workstation.yaml`: where each non-admin's keyless clone at `~/code` comes from
/// (spec section 5, ADR-0004), and the launcher script a new user gets.
///
/// ```yaml
/// infra_repo:
///   url: https://git.example.org/infra/infra.git   # no default: without a url no clone is planned
///   branch: main                                   # default: the remote's default branch
///   directory: code                                # under the home: ~/code
///   launcher_path: start-agent.sh                  # under the home; "" writes no launcher
///   launcher_template: |                           # {code} is the clone's absolute path (shell-quoted), {user} the os_user
///     #!/bin/sh
///     cd {code} && exec claude "$@"
/// ```
/// A roster entry's `repo: {url, branch}` overrides `url` and `branch` for that person.
public struct InfraRepoSettings: Sendable, Hashable, Codable {
    /// Clone source; nil disables clones (plan notes it once).
    public var url: String?
    /// Branch to check out; nil: the remote's HEAD.
    public var branch: String?
    /// Name of the clone under the home (a plain name, no `/`).
    public var directory: String = "code"
    /// Launcher script, relative to the home; empty: none.
    public var launcherPath: String = "start-agent.sh"
    /// Launcher content; `{code}` becomes the clone's absolute path (single-quoted for sh), `{user}` the os_user.
    public var launcherTemplate: String = InfraRepoSettings.defaultLauncherTemplate

    public static let defaultLauncherTemplate = """
        #!/bin/sh
        # Starts the agent in your own infra clone. Written once by workstation; yours to edit.
        cd {code} && exec claude "$@"

        """

    public init() {}

    static let keys = ["url", "branch", "directory", "launcher_path", "launcher_template"]

    /// Parses the section; every key is optional.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> InfraRepoSettings {
        var s = InfraRepoSettings()
        guard let r = KeyedReader(v, what: "infra_repo", known: keys, diags) else { return s }
        if let uv = r["url"], let url = uv.string("infra_repo.url", diags) {
            if let p = repoURLProblem(url) { diags.error(uv.location, "infra_repo.url \(p)") } else { s.url = url }
        }
        if let bv = r["branch"], let b = bv.string("infra_repo.branch", diags) {
            if let p = branchNameProblem(b) { diags.error(bv.location, "infra_repo.branch \(p)") } else { s.branch = b }
        }
        if let dv = r["directory"], let d = dv.string("infra_repo.directory", diags) {
            if let p = homeRelativeProblem(d, allowNested: false) {
                diags.error(dv.location, "infra_repo.directory \(p)")
            } else {
                s.directory = d
            }
        }
        if let lv = r["launcher_path"], let l = lv.string("infra_repo.launcher_path", diags) {
            if l.isEmpty {
                s.launcherPath = ""
            } else if let p = homeRelativeProblem(l, allowNested: true) {
                diags.error(lv.location, "infra_repo.launcher_path \(p)")
            } else {
                s.launcherPath = l
            }
        }
        if let tv = r["launcher_template"], let t = tv.string("infra_repo.launcher_template", diags) {
            if t.utf8.count > 64 << 10 {
                diags.error(tv.location, "infra_repo.launcher_template is over 64 KiB; keep the launcher short")
            } else {
                s.launcherTemplate = t
            }
        }
        if s.launcherPath == s.directory || s.launcherPath.hasPrefix(s.directory + "/") {
            diags.error(
                r.location,
                "infra_repo.launcher_path '\(printable(s.launcherPath))' is inside the clone directory '\(s.directory)'; put the launcher beside it, e.g. start-agent.sh"
            )
        }
        return s
    }

    /// The clone source for one person: the roster's `repo` override, else the settings' url and branch.
    public func source(for entry: RosterEntry) -> RepoSource? {
        if let own = entry.repo { return own }
        return url.map { RepoSource(url: $0, branch: branch) }
    }

    /// The hidden sibling a clone is made in before it is renamed into place: `.code.workstation-partial`.
    public var partialDirectory: String { ".\(directory).workstation-partial" }

    /// The launcher text for one person.
    public func launcher(user: String, codePath: String) -> String {
        launcherTemplate.replacingOccurrences(of: "{code}", with: shellQuoted(codePath)).replacingOccurrences(
            of: "{user}",
            with: user
        )
    }
}

/// `'it'\''s'`: a word `sh` reads back exactly.
public func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// Why a clone URL is refused, or nil. Accepted: `https://`, `http://`, `ssh://`, `git://`, `file://` URLs,
/// scp-like `user@host:path`, and absolute paths. Refused: an empty value, whitespace or control characters, a
/// leading `-` (it would read as an option to `git clone`), and other transports such as `ext::` (which runs
/// commands; `git-clone(1)`, "GIT URLS").
public func repoURLProblem(_ url: String) -> String? {
    if url.isEmpty { return "is empty; write the clone URL, e.g. https://git.example.org/infra/infra.git" }
    if url.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
        return "'\(printable(redactCredentials(url)))' contains whitespace or control characters"
    }
    if url.hasPrefix("-") {
        return "'\(printable(redactCredentials(url)))' starts with '-'; write a URL or an absolute path"
    }
    let lower = url.lowercased()
    for scheme in ["https://", "http://", "ssh://", "git://", "file://"] where lower.hasPrefix(scheme) {
        return url.count > scheme.count ? nil : "'\(url)' has no host or path"
    }
    if url.hasPrefix("/") { return nil }
    if url.contains("::") || url.contains("://") {
        return
            "'\(printable(redactCredentials(url)))' uses a transport workstation does not run; use https://, ssh://, git://, file:// or a path"
    }
    // scp-like syntax: [user@]host:path, with no slash before the first colon.
    if let colon = url.firstIndex(of: ":"), !url[..<colon].contains("/"), colon != url.startIndex,
        url.index(after: colon) != url.endIndex
    {
        return nil
    }
    return
        "'\(printable(redactCredentials(url)))' is not a clone URL; use https://host/path, ssh://host/path, user@host:path or an absolute path"
}

/// Why a branch name is refused, or nil (a subset of `git-check-ref-format(1)`, plus no leading `-`).
public func branchNameProblem(_ b: String) -> String? {
    let bad =
        b.isEmpty || b.hasPrefix("-") || b.hasPrefix("/") || b.hasSuffix("/") || b.hasSuffix(".lock")
        || b.hasSuffix(".")
        || b.contains("..") || b.contains("//") || b.contains("@{")
        || b.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || "~^:?*[\\".unicodeScalars.contains($0) }
    return bad ? "'\(printable(b))' is not a valid branch name (see git-check-ref-format(1))" : nil
}

/// Why a path relative to a home is refused, or nil.
func homeRelativeProblem(_ p: String, allowNested: Bool) -> String? {
    let parts = p.split(separator: "/", omittingEmptySubsequences: false)
    if p.isEmpty || p.hasPrefix("/") || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
        || p.contains("\n")
    {
        return "must be a relative path under the home without '..', got '\(printable(p))'"
    }
    if !allowNested && parts.count > 1 { return "must be a plain name under the home, got '\(printable(p))'" }
    return nil
}

/// Hides the credentials of every URL in `text`: the user-info part of `scheme://user:secret@host/...` becomes
/// `***@` (or `replacement`; `""` strips them), whether it holds a user and password or a bare token. The one redaction used for plans, the journal,
/// progress, logs and errors.
///
/// Shapes: `https://alice:s3cret@git.example.org/x.git` -> `https://***@git.example.org/x.git`. Scp-like
/// `git@host:path` carries no secret and is left alone. Follows RFC 3986 section 3.2.1 (user-info ends at the
/// last `@` before the authority's end).
public func redactCredentials(_ text: String, replacement: String = "***@") -> String {
    var out = ""
    var rest = Substring(text)
    while let range = rest.range(of: "://") {
        out += rest[..<range.upperBound]
        rest = rest[range.upperBound...]
        // The authority ends at the first '/', '?', '#', whitespace or quote.
        let end =
            rest.firstIndex(where: {
                $0 == "/" || $0 == "?" || $0 == "#" || $0.isWhitespace || $0 == "'" || $0 == "\"" || $0 == ">"
            })
            ?? rest.endIndex
        let authority = rest[..<end]
        if let at = authority.lastIndex(of: "@") {
            out += replacement
            rest = rest[rest.index(after: at)...]
        }
    }
    out += rest
    return out
}

/// Checks a roster entry's `repo: {url, branch}` override, located at each value.
func validateRepoSource(_ repo: RepoSource, _ r: KeyedReader, _ diags: DiagnosticCollector) {
    if let p = repoURLProblem(repo.url), let v = r["url"] { diags.error(v.location, "repo.url \(p)") }
    if let b = repo.branch, let p = branchNameProblem(b), let v = r["branch"] {
        diags.error(v.location, "repo.branch \(p)")
    }
}
