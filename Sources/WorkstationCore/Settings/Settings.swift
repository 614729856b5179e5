import Foundation

/// An admin declared in settings instead of the roster (the base author): adopted, never provisioned, but kept in
/// every derived file so they never lock themselves out.
public struct AdminDeclaration: Sendable, Hashable, Codable {
    public var osUser: String
    public var authentikUser: String
    public var port: Int?
    public init(osUser: String, authentikUser: String, port: Int? = nil) {
        self.osUser = osUser
        self.authentikUser = authentikUser
        self.port = port
    }
}

/// A per-user template unit (`t3-serve@.service`, a browser-automation server...) with its own stable port.
public struct PerUserUnit: Sendable, Hashable, Codable {
    /// Template name with the trailing `@`, e.g. `t3-serve@`; the instance is `t3-serve@alice.service`.
    public var template: String
    /// Ports are allocated from this closed range when not pinned.
    public var portRange: ClosedRange<Int>
    /// Environment variable carrying the port in the instance drop-in (e.g. `T3CODE_PORT`).
    public var portEnvironment: String

    public init(template: String, portRange: ClosedRange<Int>, portEnvironment: String) {
        self.template = template
        self.portRange = portRange
        self.portEnvironment = portEnvironment
    }

    /// `t3-serve@alice.service`.
    public func instance(_ osUser: String) -> String { "\(template)\(osUser).service" }
    /// `t3-serve@.service`.
    public var templateUnit: String { "\(template).service" }
}

/// Group policy for managed accounts (spec section 6).
public struct AccountPolicy: Sendable, Hashable, Codable {
    /// Every managed account is in this group; config-base traversal ACLs name it.
    public var group: String = "workstation"
    /// One group per provisioned tier.
    public var tierGroups: [Tier: String] = [
        .powerUser: "workstation-power-user", .namespaceOwner: "workstation-namespace-owner",
    ]
    /// Groups a non-admin must never hold; finding one is a violation, removing it is a revoke.
    public var forbiddenGroups: [String] = ["sudo", "docker", "code-shared"]
    /// Members of this group hold admin rights on the host (the lockout guard protects their access).
    public var adminGroup: String = "sudo"
    /// Login shell of new accounts.
    public var shell: String = "/bin/bash"
    /// Parent of homes: `/home/alice`.
    public var homeRoot: String = "/home"

    public init() {}

    public var allManagedGroups: [String] { [group] + tierGroups.values.sorted() }
}

/// Paths of the files regenerated wholly from the roster.
public struct DerivedFiles: Sendable, Hashable, Codable {
    /// `authentik_user=os_user` per line; read by the ttyd login shim.
    public var ttydUserMap: String = "/etc/ttyd-user-map"
    /// JSON routing map read by the dispatcher (docs/dispatch-json.md).
    public var dispatch: String = "/etc/t3-serve/dispatch.json"
    public init() {}
}

/// The host description, `workstation.yaml`. Every key has a default, so the file is optional.
public struct Settings: Sendable, Hashable, Codable {
    /// The lead's config base (a checkout); skills, rules, agents and commands link into it.
    public var configBase: String = "/srv/workstation/config-base"
    /// Items of `~/.claude` inherited live as symlinks into the config base.
    public var inheritedItems: [String] = ["skills", "rules", "agents", "commands"]
    public var accounts = AccountPolicy()
    public var admins: [AdminDeclaration] = []
    public var units: [PerUserUnit] = [
        PerUserUnit(template: "t3-serve@", portRange: 3774...3873, portEnvironment: "T3CODE_PORT")
    ]
    public var derived = DerivedFiles()
    /// Directory for state, journal and lock under the root.
    public var stateDirectory: String = "/var/lib/workstation"
    /// Seconds a second apply waits for the lock before giving up.
    public var lockTimeout: Double = 10
    /// The infra clone at `~/code` and the launcher (`infra_repo:`, Settings+InfraRepo.swift).
    public var infraRepo = InfraRepoSettings()
    /// Identity, cluster and secrets services; nil: not configured, their resources are skipped.
    public var authentik: AuthentikSettings?
    public var kubernetes: KubernetesSettings?
    public var vault: VaultSettings?
    /// The per-user auth items of spec section 7 (`auth:`, Settings+Auth.swift).
    public var auth = AuthSettings()
    /// Memory budgets and the admission gate (`capacity:`).
    public var capacity = CapacitySettings()
    /// What `setup-host` converges machine-wide (`setup_host:`).
    public var setupHost = SetupHostSettings()
    public var offboard = OffboardSettings()
    public var cutover = CutoverSettings()
    public var idle = IdleSettings()
    /// The placement of roster people without their own `placement:` (`placement:`, docs/scale-out.md).
    public var placement: PersonPlacement = .host
    /// How kubernetes-placed people's workspaces are rendered (`workspaces:`, Settings+Workspaces.swift); nil:
    /// nobody may be placed on Kubernetes.
    public var workspaces: WorkspaceSettings?
    /// Where each key is written in the settings file, by dotted path (`accounts.group`, `offboard.backup_directory`),
    /// for errors the host shows later (Settings+Placement.swift); empty for defaults.
    public var locations: [String: SourceLocation] = [:]
    /// Ports other services on this host listen on (`otherServicePorts`): port -> what listens there. No person's
    /// unit may take one.
    public var reservedPorts: [Int: String] = [9464: "dispatch.metrics_listen (default 127.0.0.1:9464)"]

    public init() {}

    /// Where `key` (a dotted path) is written, else the file's start; `file` names the settings file in messages.
    public func location(of key: String) -> SourceLocation {
        locations[key] ?? locations[""] ?? SourceLocation(file: "workstation.yaml", line: 0, column: 0)
    }

    /// The primary per-user unit (the t3 instance), whose port the dispatcher routes to.
    public var primaryUnit: PerUserUnit { units[0] }

    /// Top-level keys. `dispatch` is read by the data plane (`DispatchConfig`), which validates it itself.
    /// One key per line, so parallel additions merge cleanly.
    static let topKeys = [
        "config_base",
        "inherited_items",
        "accounts",
        "admins",
        "units",
        "derived",
        "state_directory",
        "lock_timeout",
        "dispatch",
        "infra_repo",
        "authentik",
        "kubernetes",
        "vault",
        "auth",
        "capacity",
        "setup_host",
        "offboard",
        "cutover",
        "idle",
        "placement",
        "workspaces",
    ]

    /// Parses `workstation.yaml`.
    /// - Throws: `ValidationFailure` listing every problem (unknown keys, wrong types, bad paths).
    public static func parse(_ data: Data, file: String) throws -> Settings {
        let diags = DiagnosticCollector()
        var s = Settings()
        guard let doc = try loadYAML(data, file: file) else { return s }
        guard let r = KeyedReader(doc, what: "settings", known: topKeys, diags) else {
            throw ValidationFailure(diags.diagnostics)
        }
        if let v = r["config_base"], let p = absolutePath(v, "config_base", diags) { s.configBase = p }
        if let v = r["inherited_items"], let items = v.stringList("inherited_items", diags) {
            for (item, loc) in items where item.isEmpty || item.contains("/") || item.hasPrefix(".") {
                diags.error(loc, "inherited item '\(printable(item))' must be a plain name under ~/.claude")
            }
            s.inheritedItems = items.map(\.0)
        }
        if let v = r["state_directory"], let p = absolutePath(v, "state_directory", diags) { s.stateDirectory = p }
        if let v = r["lock_timeout"], let n = v.integer("lock_timeout", diags, range: 0...3600) {
            s.lockTimeout = Double(n)
        }
        if let v = r["accounts"] { parseAccounts(v, into: &s.accounts, diags) }
        if let v = r["setup_host"] { s.setupHost = SetupHostSettings.parse(v, diags) }
        if let v = r["admins"] { s.admins = parseAdmins(v, diags) }
        if let v = r["infra_repo"] { s.infraRepo = InfraRepoSettings.parse(v, diags) }
        if let v = r["offboard"] { s.offboard = OffboardSettings.parse(v, diags) }
        if let v = r["cutover"] { s.cutover = CutoverSettings.parse(v, diags) }
        if let v = r["idle"] { s.idle = IdleSettings.parse(v, diags) }
        if let v = r["units"] { s.units = parseUnits(v, diags) ?? s.units }
        if let v = r["derived"], let d = KeyedReader(v, what: "derived", known: ["ttyd_user_map", "dispatch"], diags) {
            if let p = d["ttyd_user_map"].flatMap({ absolutePath($0, "derived.ttyd_user_map", diags) }) {
                s.derived.ttydUserMap = p
            }
            if let p = d["dispatch"].flatMap({ absolutePath($0, "derived.dispatch", diags) }) { s.derived.dispatch = p }
        }
        if let v = r["authentik"] { s.authentik = AuthentikSettings.parse(v, diags) }
        if let v = r["kubernetes"] { s.kubernetes = KubernetesSettings.parse(v, diags) }
        if let v = r["vault"] { s.vault = VaultSettings.parse(v, diags) }
        if let v = r["auth"] { s.auth = AuthSettings.parse(v, diags) }
        if let v = r["capacity"] { s.capacity = CapacitySettings.parse(v, diags) }
        s.parseWorkspaces(r, diags)
        s.locations = keyLocations(doc)
        s.checkPlacement(r, diags)
        s.checkGroups(diags)
        s.checkPorts(doc, diags)
        s.checkAuth(r, diags)
        if !diags.isEmpty { throw ValidationFailure(diags.diagnostics) }
        return s
    }

    private static func parseAccounts(_ v: YAMLValue, into a: inout AccountPolicy, _ diags: DiagnosticCollector) {
        let keys = ["group", "tier_groups", "forbidden_groups", "admin_group", "shell", "home_root"]
        guard let r = KeyedReader(v, what: "accounts", known: keys, diags) else { return }
        func group(_ v: YAMLValue, _ what: String) -> String? {
            guard let g = v.string(what, diags) else { return nil }
            if !isValidGroupName(g) { diags.error(v.location, "\(what) '\(printable(g))' is not a valid group name") }
            return g
        }
        if let v = r["group"], let g = group(v, "accounts.group") { a.group = g }
        if let v = r["admin_group"], let g = group(v, "accounts.admin_group") { a.adminGroup = g }
        if let v = r["forbidden_groups"], let list = v.stringList("accounts.forbidden_groups", diags) {
            a.forbiddenGroups = list.map(\.0)
        }
        if let v = r["tier_groups"],
            let tr = KeyedReader(v, what: "accounts.tier_groups", known: ["power-user", "namespace-owner"], diags)
        {
            for tier in [Tier.powerUser, .namespaceOwner] {
                if let gv = tr[tier.rawValue], let g = group(gv, "accounts.tier_groups.\(tier.rawValue)") {
                    a.tierGroups[tier] = g
                }
            }
        }
        if let v = r["shell"], let p = absolutePath(v, "accounts.shell", diags) { a.shell = p }
        if let v = r["home_root"], let p = absolutePath(v, "accounts.home_root", diags) { a.homeRoot = p }
    }

    private static func parseAdmins(_ v: YAMLValue, _ diags: DiagnosticCollector) -> [AdminDeclaration] {
        guard case .sequence = v.node else {
            diags.error(v.location, "admins must be a list of {os_user, authentik_user}")
            return []
        }
        var out: [AdminDeclaration] = []
        for item in v.node.sequence ?? [] {
            let iv = YAMLValue(node: item, file: v.file)
            guard let r = KeyedReader(iv, what: "an admin", known: ["os_user", "authentik_user", "port"], diags),
                let os = r.required("os_user", diags)?.string("os_user", diags),
                let ak = r.required("authentik_user", diags)?.string("authentik_user", diags)
            else { continue }
            let port = r["port"]?.integer("port", diags, range: 1024...65535)
            if let p = accountNameProblem(os), p != "is a reserved system name" {
                diags.error(iv.location, "admin os_user '\(printable(os))' \(p)")
            }
            if let p = identityProblem(ak) { diags.error(iv.location, "admin authentik_user '\(printable(ak))' \(p)") }
            out.append(AdminDeclaration(osUser: os, authentikUser: ak, port: port))
        }
        return out
    }

    private static func parseUnits(_ v: YAMLValue, _ diags: DiagnosticCollector) -> [PerUserUnit]? {
        guard let seq = v.node.sequence, !seq.isEmpty else {
            diags.error(v.location, "units must be a non-empty list; the first is the t3 unit the dispatcher routes to")
            return nil
        }
        var out: [PerUserUnit] = []
        for item in seq {
            let iv = YAMLValue(node: item, file: v.file)
            guard let r = KeyedReader(iv, what: "a unit", known: ["template", "port_range", "port_env"], diags),
                let t = r.required("template", diags)?.string("template", diags)
            else { continue }
            if !t.hasSuffix("@") || t.count < 2
                || t.dropLast().contains(where: {
                    !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "."))
                })
            {
                diags.error(iv.location, "template '\(printable(t))' must be a unit name ending in '@', e.g. t3-serve@")
            }
            var range = 3774...3873
            if let rv = r["port_range"], let list = rv.stringList("port_range", diags) {
                if list.count == 2, let lo = Int(list[0].0), let hi = Int(list[1].0), 1024 <= lo, lo <= hi, hi <= 65535
                {
                    range = lo...hi
                } else {
                    diags.error(rv.location, "port_range must be [low, high] within 1024-65535")
                }
            }
            let env = r["port_env"]?.string("port_env", diags) ?? "PORT"
            if env.isEmpty || !env.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) {
                diags.error(
                    iv.location,
                    "port_env '\(printable(env))' must be an environment variable name like T3CODE_PORT"
                )
            }
            out.append(PerUserUnit(template: t, portRange: range, portEnvironment: env))
        }
        let templates = out.map(\.template)
        if Set(templates).count != templates.count { diags.error(v.location, "units lists a template twice") }
        return out
    }
}
