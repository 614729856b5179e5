import Foundation

/// A person's RBAC tier; it drives their workstation profile (spec section 6).
public enum Tier: String, Sendable, Codable, CaseIterable, Comparable {
    /// Adopted, never created or modified by workstation; included in every derived file.
    case admin
    /// Cluster-wide read-only without Secrets.
    case powerUser = "power-user"
    /// Admin inside the namespaces they own.
    case namespaceOwner = "namespace-owner"

    public static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }
}

/// Memory budget for one user's slice; values are bytes (spec "Capacity", ADR-0007).
public struct MemoryBudget: Sendable, Hashable, Codable {
    /// `MemoryHigh=`: the kernel throttles above this, bytes.
    public var high: UInt64
    /// `MemoryMax=`: hard limit, the OOM killer acts inside the slice above this, bytes.
    public var max: UInt64
    /// `MemorySwapMax=`, bytes.
    public var swapMax: UInt64

    public init(high: UInt64, max: UInt64, swapMax: UInt64) {
        self.high = high
        self.max = max
        self.swapMax = swapMax
    }
}

/// Per-user infra repository override.
public struct RepoSource: Sendable, Hashable, Codable {
    public var url: String
    public var branch: String?
    public init(url: String, branch: String?) {
        self.url = url
        self.branch = branch
    }
}

/// One person in the roster, keyed by `os_user`.
public struct RosterEntry: Sendable, Hashable, Codable {
    public var osUser: String
    public var authentikUser: String
    public var k8sUser: String
    public var tier: Tier
    /// Namespaces owned; non-empty exactly for `namespace-owner`.
    public var namespaces: [String]
    public var email: String?
    /// Pinned uid; otherwise allocated once and recorded in state.
    public var uid: Int?
    /// Pinned port of the primary per-user unit (the t3 instance).
    public var port: Int?
    /// Pinned ports of other per-user units, keyed by template name (e.g. `playwright-mcp@`).
    public var ports: [String: Int]
    /// Extra supplementary groups (never sudo, docker or the shared-code group for non-admins).
    public var groups: [String]
    /// Free-form flags that settings can key on, e.g. `ha` for a secret file only some users get.
    public var flags: [String]
    /// Infra repository override for this user's `~/code`.
    public var repo: RepoSource?
    /// Memory budget override.
    public var memory: MemoryBudget?
    /// `claude_login:`: own-login or shared, overriding the tier's choice (`auth.claude`); nil: the tier's.
    public var claudeLogin: ClaudeLogin?
    /// `placement:`: where the workspace runs (`placement(_:)` gives the effective one); nil: the settings default.
    public var placement: PersonPlacement?
    /// Where the entry starts in the roster file.
    public var location: SourceLocation
    /// Where each written field's value is (`authentik_user`, `k8s_user`, `email`...), for errors about one field;
    /// a field not in it is reported at `location`.
    public var fieldLocations: [String: SourceLocation] = [:]

    /// Where `field`'s value is written, else where the entry starts.
    public func location(of field: String) -> SourceLocation { fieldLocations[field] ?? location }

    /// True for an adopted entry: in every derived file, never provisioned.
    public var isAdopted: Bool { tier == .admin }

    public init(
        osUser: String,
        authentikUser: String,
        k8sUser: String,
        tier: Tier,
        namespaces: [String] = [],
        email: String? = nil,
        uid: Int? = nil,
        port: Int? = nil,
        ports: [String: Int] = [:],
        groups: [String] = [],
        flags: [String] = [],
        repo: RepoSource? = nil,
        memory: MemoryBudget? = nil,
        location: SourceLocation = SourceLocation(file: "roster.yaml", line: 0, column: 0)
    ) {
        self.osUser = osUser
        self.authentikUser = authentikUser
        self.k8sUser = k8sUser
        self.tier = tier
        self.namespaces = namespaces
        self.email = email
        self.uid = uid
        self.port = port
        self.ports = ports
        self.groups = groups
        self.flags = flags
        self.repo = repo
        self.memory = memory
        self.location = location
    }
}

/// The roster: the single source of truth for who has a workstation (spec section 1, ADR-0006).
///
/// Shape (YAML): `users:` mapping `os_user` to a mapping of `authentik_user`, `k8s_user`, `tier`, and optional
/// `namespaces`, `email`, `uid`, `port`, `ports`, `groups`, `flags`, `repo`, `memory`, `claude_login`, `placement`
/// (`host` or `kubernetes`). Flow mappings and
/// comments are accepted as in the specification.
public struct Roster: Sendable, Hashable, Codable {
    /// Entries in file order.
    public var entries: [RosterEntry]

    public init(entries: [RosterEntry]) { self.entries = entries }

    public subscript(osUser: String) -> RosterEntry? { entries.first { $0.osUser == osUser } }

    static let entryKeys = [
        "authentik_user", "k8s_user", "tier", "namespaces", "email", "uid", "port", "ports", "groups", "flags", "repo",
        "memory",
        "claude_login",
        "placement",
    ]

    /// Parses and validates a roster file. Pure: reads only `data`.
    ///
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - file: the name to print in diagnostics.
    ///   - settings: for reserved group names and the groups a non-admin may never hold.
    /// - Throws: `ValidationFailure` listing every problem (file:line:col), never a partial roster.
    public static func parse(_ data: Data, file: String, settings: Settings = Settings()) throws -> Roster {
        let diags = DiagnosticCollector()
        guard let doc = try loadYAML(data, file: file) else {
            // A truncated or blank file must never read as "nobody": the next apply would cut everyone.
            throw ValidationFailure([
                Diagnostic(
                    SourceLocation(file: file, line: 1, column: 1),
                    "the roster is empty; write `users: {}` if you really mean nobody"
                )
            ])
        }
        var entries: [RosterEntry] = []
        if let top = KeyedReader(doc, what: "the roster", known: ["users"], diags), let users = usersValue(top, diags) {
            for pair in users.mapping("users", diags) ?? [] {
                if let type = pair.keyValue.implicitType {
                    diags.error(
                        pair.keyValue.location,
                        "os_user '\(printable(pair.key))' is written bare, which YAML 1.1 readers take as \(type); quote it (\"\(printable(pair.key))\") if you mean the name"
                    )
                }
                if let e = parseEntry(osUser: pair.key, keyLocation: pair.keyValue.location, pair.value, diags) {
                    entries.append(e)
                } else if let p = accountNameProblem(pair.key) {
                    // The entry is incomplete, so the cross-entry checks never see it: report its name here.
                    diags.error(pair.keyValue.location, "os_user '\(printable(pair.key))' \(p)")
                }
            }
        }
        let roster = Roster(entries: entries)
        RosterValidator(settings: settings).check(roster, diags)
        if !diags.isEmpty { throw ValidationFailure(diags.diagnostics) }
        return roster
    }

    /// The `users` mapping. A missing key, or one with no value (`users:` whose entries are all commented out,
    /// `users: ~`), is refused: read as "nobody", the next apply would drop everyone's access. An empty roster is
    /// written `users: {}`.
    private static func usersValue(_ top: KeyedReader, _ diags: DiagnosticCollector) -> YAMLValue? {
        if let v = top["users"] { return v }
        if top.has("users") {
            diags.error(
                top.location(of: "users") ?? top.location,
                "users has no value (empty, null or every entry commented out), which would remove everyone; list the people, or write `users: {}` if you really mean nobody"
            )
        } else {
            diags.error(
                top.location,
                "the roster has no users key; list the people under `users:`, or write `users: {}` if you really mean nobody"
            )
        }
        return nil
    }

    private static func parseEntry(
        osUser: String,
        keyLocation: SourceLocation,
        _ v: YAMLValue,
        _ diags: DiagnosticCollector
    ) -> RosterEntry? {
        let what = "entry '\(osUser)'"
        guard let r = KeyedReader(v, what: what, known: entryKeys, diags) else { return nil }
        let authentik = r.required("authentik_user", diags)?.name("authentik_user", diags)
        let k8s = r.required("k8s_user", diags)?.name("k8s_user", diags)
        var tier: Tier?
        if let tv = r.required("tier", diags), let t = tv.string("tier", diags) {
            tier = Tier(rawValue: t)
            if tier == nil {
                diags.error(tv.location, "tier must be one of admin, power-user, namespace-owner, got '\(t)'")
            }
        }
        let namespaces = r["namespaces"]?.nameList("namespaces", diags) ?? []
        if let tier {
            if tier == .namespaceOwner && namespaces.isEmpty {
                diags.error(
                    r["namespaces"]?.location ?? keyLocation,
                    "\(what): a namespace-owner needs a non-empty namespaces list, e.g. namespaces: [team-a]"
                )
            }
            if tier != .namespaceOwner && r.has("namespaces") {
                diags.error(
                    r["namespaces"]?.location ?? keyLocation,
                    "\(what): only a namespace-owner owns namespaces; remove namespaces or change the tier"
                )
            }
        }
        for (ns, loc) in namespaces where !isDNSLabel(ns) {
            diags.error(
                loc,
                "namespace '\(ns)' is not a DNS-1123 label (lower-case letters, digits and '-', at most 63, starting and ending alphanumeric)"
            )
        }
        let email = r["email"]?.name("email", diags)
        if let email, let ev = r["email"], !isPlausibleEmail(email) {
            diags.error(ev.location, "email '\(printable(email))' is not an address like alice@example.org")
        }
        let uid = r["uid"]?.integer("uid", diags, range: 1000...59999)
        let port = r["port"]?.integer("port", diags, range: 1024...65535)
        var ports: [String: Int] = [:]
        if let pv = r["ports"] {
            for p in pv.mapping("ports", diags) ?? [] {
                if let n = p.value.integer("ports.\(p.key)", diags, range: 1024...65535) { ports[p.key] = n }
            }
        }
        let groups = r["groups"]?.nameList("groups", diags) ?? []
        let flags = r["flags"]?.nameList("flags", diags) ?? []
        var repo: RepoSource?
        if let rv = r["repo"], let rr = KeyedReader(rv, what: "\(what) repo", known: ["url", "branch"], diags) {
            if let url = rr.required("url", diags)?.string("repo.url", diags) {
                repo = RepoSource(url: url, branch: rr["branch"]?.string("repo.branch", diags))
                validateRepoSource(repo!, rr, diags)
            }
        }
        var memory: MemoryBudget?
        if let mv = r["memory"] {
            memory = parseMemoryBudget(mv, what: "\(what) memory", diags)
        }
        for (g, loc) in groups where !isValidGroupName(g) {
            diags.error(loc, "group '\(printable(g))' is not a valid group name")
        }
        var seenNamespaces: [String: SourceLocation] = [:]
        for (ns, loc) in namespaces {
            if let first = seenNamespaces[ns] {
                diags.error(
                    loc,
                    "namespace '\(printable(ns))' is listed twice for '\(osUser)' (first at line \(first.line)); remove the repeat"
                )
            } else {
                seenNamespaces[ns] = loc
            }
        }
        let claudeLogin = r["claude_login"].flatMap { AuthSettings.login($0, "claude_login", diags) }
        if claudeLogin != nil, tier == .admin, let v = r["claude_login"] {
            diags.error(
                v.location,
                "claude_login is not used for an admin (adopted: workstation writes nothing into their home); remove it"
            )
        }
        var placement: PersonPlacement?
        if let pv = r["placement"], let text = pv.string("placement", diags) {
            placement = PersonPlacement(rawValue: text)
            if placement == nil {
                diags.error(pv.location, PersonPlacement.refusal(text, key: "placement"))
            } else if tier == .admin, placement == .kubernetes {
                diags.error(
                    pv.location,
                    "an admin is adopted on the host (the config base author), so placement: kubernetes does not apply; remove it"
                )
            }
        }
        guard let authentik, let k8s, let tier else { return nil }
        var entry = RosterEntry(
            osUser: osUser,
            authentikUser: authentik,
            k8sUser: k8s,
            tier: tier,
            namespaces: namespaces.map(\.0),
            email: email,
            uid: uid,
            port: port,
            ports: ports,
            groups: groups.map(\.0),
            flags: flags.map(\.0),
            repo: repo,
            memory: memory,
            location: keyLocation
        )
        entry.claudeLogin = claudeLogin
        entry.placement = placement
        for key in entryKeys { if let v = r[key] { entry.fieldLocations[key] = v.location } }
        return entry
    }
}

/// Reads `{high: 4G, max: 6G, swap_max: 1G}`; sizes take K, M, G, T suffixes (powers of 1024) as systemd does.
func parseMemoryBudget(_ v: YAMLValue, what: String, _ diags: DiagnosticCollector) -> MemoryBudget? {
    guard let r = KeyedReader(v, what: what, known: ["high", "max", "swap_max"], diags) else { return nil }
    func size(_ key: String) -> UInt64? {
        guard let sv = r.required(key, diags), let s = sv.string("\(what).\(key)", diags) else { return nil }
        guard let n = parseByteSize(s) else {
            diags.error(sv.location, "\(what).\(key) '\(s)' is not a size like 512M or 4G")
            return nil
        }
        return n
    }
    guard let high = size("high"), let max = size("max"), let swap = size("swap_max") else { return nil }
    if high > max { diags.error(r.location, "\(what): high (\(high) bytes) must not exceed max (\(max) bytes)") }
    return MemoryBudget(high: high, max: max, swapMax: swap)
}

/// Parses `512M`, `4G`, `1073741824` into bytes (binary suffixes, as `systemd.resource-control(5)`).
public func parseByteSize(_ s: String) -> UInt64? {
    let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    guard let last = s.last else { return nil }
    if let mult = units[Character(last.uppercased())] {
        guard let n = UInt64(s.dropLast()), n.multipliedReportingOverflow(by: mult).overflow == false else {
            return nil
        }
        return n * mult
    }
    return UInt64(s)
}

/// Formats bytes the way systemd accepts them back (`4G`, `512M`, or plain bytes).
public func formatByteSize(_ n: UInt64) -> String {
    for (suffix, mult) in [("T", UInt64(1) << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
    where n >= mult && n % mult == 0 {
        return "\(n / mult)\(suffix)"
    }
    return "\(n)"
}
