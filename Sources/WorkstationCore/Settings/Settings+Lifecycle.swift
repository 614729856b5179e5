import Foundation

/// `offboard:` settings: where the archive stage writes home archives.
public struct OffboardSettings: Sendable, Hashable, Codable {
    /// Directory (under the root) receiving `<os_user>-<uid>-<UTC time>.tar.gz` and its `.sha256`; created 0700.
    public var backupDirectory: String = "/var/backups/workstation"
    public init() {}

    /// Reads `offboard: {backup_directory}`; every key has a default.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> OffboardSettings {
        var s = OffboardSettings()
        guard let r = KeyedReader(v, what: "offboard", known: ["backup_directory"], diags) else { return s }
        if let p = r["backup_directory"].flatMap({ absolutePath($0, "offboard.backup_directory", diags) }) {
            s.backupDirectory = p
        }
        return s
    }
}

/// `cutover:` settings: what `workstation cutover USER` moves a user off (spec "Incrementality & migration", step 5).
public struct CutoverSettings: Sendable, Hashable, Codable {
    /// Launcher scripts, relative to the user's home (e.g. `start-claude.sh`), repointed from `leadTree` to `$HOME/code`.
    public var launchers: [String] = ["start-claude.sh"]
    /// The lead's home; `~/.claude` links pointing into it are dropped (the managed layer delivers them now).
    public var leadHome: String = "/home/lead"
    /// The lead's working tree that launchers `cd` into today; default `<lead_home>/code`.
    public var leadTree: String?
    /// The shared-code group the user leaves at cutover.
    public var sharedCodeGroup: String = "code-shared"
    public init() {}

    /// `leadTree`, or `<leadHome>/code`.
    public var effectiveLeadTree: String { leadTree ?? joinPath(leadHome, "code") }

    /// Reads `cutover: {launchers, lead_home, lead_tree, shared_code_group}`; every key has a default.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> CutoverSettings {
        var s = CutoverSettings()
        let keys = ["launchers", "lead_home", "lead_tree", "shared_code_group"]
        guard let r = KeyedReader(v, what: "cutover", known: keys, diags) else { return s }
        if let v = r["launchers"], let list = v.stringList("cutover.launchers", diags) {
            for (item, loc) in list {
                let parts = item.split(separator: "/", omittingEmptySubsequences: false)
                if item.isEmpty || item.hasPrefix("/")
                    || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
                {
                    diags.error(
                        loc,
                        "launcher '\(printable(item))' must be a path relative to the home without '..', e.g. start-claude.sh"
                    )
                }
            }
            s.launchers = list.map(\.0)
        }
        if let p = r["lead_home"].flatMap({ absolutePath($0, "cutover.lead_home", diags) }) { s.leadHome = p }
        if let p = r["lead_tree"].flatMap({ absolutePath($0, "cutover.lead_tree", diags) }) { s.leadTree = p }
        if let v = r["shared_code_group"], let g = v.string("cutover.shared_code_group", diags) {
            if isValidGroupName(g) {
                s.sharedCodeGroup = g
            } else {
                diags.error(v.location, "cutover.shared_code_group '\(printable(g))' is not a valid group name")
            }
        }
        return s
    }
}

/// `idle:` settings: what makes a user busy for the idle gate.
public struct IdleSettings: Sendable, Hashable, Codable {
    /// Process names (`/proc/<pid>/comm`, at most 15 bytes) that count as interactive use.
    public var processNames: [String] = ["claude", "tmux", "t3"]
    public init() {}

    /// Reads `idle: {process_names}`.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> IdleSettings {
        var s = IdleSettings()
        guard let r = KeyedReader(v, what: "idle", known: ["process_names"], diags) else { return s }
        if let v = r["process_names"], let list = v.stringList("idle.process_names", diags) {
            for (name, loc) in list where name.isEmpty || name.contains("/") || name.utf8.count > 15 {
                diags.error(
                    loc,
                    "process name '\(printable(name))' must be a command name of 1 to 15 bytes without '/', as in /proc/PID/comm"
                )
            }
            s.processNames = list.map(\.0)
        }
        return s
    }
}
