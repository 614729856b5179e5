import Foundation

/// How a person's Claude Code logs in (spec section 7, "Claude OAuth").
public enum ClaudeLogin: String, Sendable, Hashable, Codable, CaseIterable {
    /// The person runs `claude` and logs in interactively; workstation writes nothing. The default.
    case ownLogin = "own-login"
    /// The org's token from Vault, delivered as `CLAUDE_CODE_OAUTH_TOKEN` in the person's own 0600 env file.
    case shared
}

/// How a value read from Vault becomes bytes before any template is applied.
public enum SecretEncoding: String, Sendable, Hashable, Codable, CaseIterable {
    /// The value's UTF-8 bytes, as stored.
    case none
    /// The value is base64 (RFC 4648 section 4; surrounding whitespace ignored): the file gets the decoded bytes,
    /// exactly (NUL, 0xFF and line breaks included).
    case base64
}

/// Where a KV v2 value lives: `<mount>/data/<path>`, key `key`. `path` may hold `{os_user}`, replaced per person.
public struct VaultValueRef: Sendable, Hashable, Codable {
    public var mount: String = "secret"
    public var path: String
    public var key: String
    public init(mount: String = "secret", path: String, key: String) {
        self.mount = mount
        self.path = path
        self.key = key
    }

    static func parse(
        _ r: KeyedReader,
        what: String,
        _ diags: DiagnosticCollector,
        allowUserPlaceholder: Bool = false
    ) -> VaultValueRef? {
        guard let pv = r.required("path", diags), let kv = r.required("key", diags),
            let path = pv.string("\(what).path", diags), let key = kv.string("\(what).key", diags)
        else { return nil }
        let probe = allowUserPlaceholder ? path.replacingOccurrences(of: "{os_user}", with: "u") : path
        let ok =
            !probe.isEmpty && !probe.hasPrefix("/") && !probe.split(separator: "/").contains("..")
            && probe.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }
        if !ok {
            diags.error(
                pv.location,
                "\(what).path '\(printable(path))' may contain only letters, digits, '-', '_', '.', '/'\(allowUserPlaceholder ? " and {os_user}" : "")"
            )
            return nil
        }
        if key.isEmpty { diags.error(kv.location, "\(what).key must name a key of the secret's data") }
        var ref = VaultValueRef(path: path, key: key)
        if let mv = r["mount"], let m = plainWord(mv, "\(what).mount", diags, allowSlash: true) { ref.mount = m }
        return ref
    }

    /// The reference for one person: `{os_user}` replaced.
    public func expanded(for osUser: String) -> VaultValueRef {
        VaultValueRef(mount: mount, path: path.replacingOccurrences(of: "{os_user}", with: osUser), key: key)
    }
}

/// `auth.claude`: the Claude OAuth token per tier and per person (roster `claude_login:` wins over the tier, the
/// tier over `default`). Shared means: the org's token read from Vault and written once, 0600, owned by the person,
/// to `env_file` (`export CLAUDE_CODE_OAUTH_TOKEN=...`), which only that person's login shell sources. Never written
/// where the person already logged in (`~/.claude/.credentials.json` exists).
public struct ClaudeAuthSettings: Sendable, Hashable, Codable {
    public var defaultLogin: ClaudeLogin = .ownLogin
    public var tiers: [Tier: ClaudeLogin] = [:]
    /// Where the org's token is in Vault; required when anyone gets `shared`.
    public var token: VaultValueRef?
    /// The env file, relative to the home.
    public var envFile: String = ".config/workstation/claude.env"
    public init() {}

    /// The login `e` gets: roster `claude_login`, else the tier's, else `default`.
    public func login(for e: RosterEntry) -> ClaudeLogin { e.claudeLogin ?? tiers[e.tier] ?? defaultLogin }
}

/// `auth.beads`: the Dolt credential `bd` needs (spec section 7, "beads credential"), from Vault.
public struct BeadsAuthSettings: Sendable, Hashable, Codable {
    public enum Delivery: String, Sendable, Hashable, Codable { case env, file }
    public var source: VaultValueRef
    /// `base64` (the default): the credential is binary and stored base64 in Vault.
    public var encoding: SecretEncoding = .base64
    /// `env` (the default): `export DOLT_REMOTE_PASSWORD=...` in `env_file`; `file`: the exact bytes at `target`.
    public var delivery: Delivery = .env
    public var envFile: String = ".config/workstation/beads.env"
    /// The variable `bd` (Dolt) reads the remote password from.
    public var variable: String = "DOLT_REMOTE_PASSWORD"
    /// For `delivery: file`, relative to the home; never inside a git working tree (the secret-file guard).
    public var target: String = ".config/beads/credential-key"
    public var tiers: [Tier] = []
    public init(source: VaultValueRef) { self.source = source }
}

/// `auth.playwright`: the non-secret playwright MCP entry added to `~/.claude.json` `mcpServers` where absent.
/// With `unit`, a per-user unit of `units:` serving MCP over HTTP on the person's port: the entry is
/// `{"type": "http", "url": "http://127.0.0.1:<port>/mcp"}`. Without, a stdio command (opens no port).
public struct PlaywrightMCPSettings: Sendable, Hashable, Codable {
    /// The `mcpServers` key.
    public var name: String = "playwright"
    public var command: String = "npx"
    public var args: [String] = ["@playwright/mcp@latest"]
    /// Template of a per-user unit listed in `units:` (e.g. `playwright-mcp@`); nil: the stdio command.
    public var unit: String?
    /// URL path of the unit's MCP endpoint.
    public var urlPath: String = "/mcp"
    public var tiers: [Tier] = []
    public init() {}
}

/// `kubernetes.auth`: how the generated kubeconfig authenticates.
public enum KubernetesAuth: String, Sendable, Hashable, Codable {
    /// kubelogin (`kubectl oidc-login get-token`), the default (ADR-0005).
    case oidc
    /// A service-account token in a file the person owns (0600), named by the kubeconfig's `tokenFile`: the fallback
    /// where kubelogin cannot be used.
    case serviceAccountToken = "service-account-token"
}

/// `auth:` in workstation.yaml: the per-user auth items of spec section 7. Every subsection is optional.
public struct AuthSettings: Sendable, Hashable, Codable {
    public var claude: ClaudeAuthSettings?
    public var beads: BeadsAuthSettings?
    public var playwright: PlaywrightMCPSettings?
    /// The root-owned profile snippet that sources each person's env files (only files that person owns).
    public var profileSnippet: String = "/etc/profile.d/workstation-auth.sh"
    public init() {}

    static let keys = ["claude", "beads", "playwright", "profile_snippet"]

    /// True when nothing is configured.
    public var isEmpty: Bool { claude == nil && beads == nil && playwright == nil }

    /// Home-relative env files the profile snippet sources, in order.
    public var envFiles: [String] {
        var out: [String] = []
        if let c = claude, c.token != nil { out.append(c.envFile) }
        if let b = beads, b.delivery == .env { out.append(b.envFile) }
        return out
    }

    /// Parses `auth:`; located errors for unknown keys, bad values and secrets without Vault.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> AuthSettings {
        var s = AuthSettings()
        guard let r = KeyedReader(v, what: "auth", known: keys, diags) else { return s }
        if let v = r["profile_snippet"], let p = absolutePath(v, "auth.profile_snippet", diags) {
            if !p.hasSuffix(".sh") {
                diags.error(v.location, "auth.profile_snippet must end in .sh, or login shells will not source it")
            } else {
                s.profileSnippet = p
            }
        }
        if let v = r["claude"] { s.claude = parseClaude(v, diags) }
        if let v = r["beads"] { s.beads = parseBeads(v, diags) }
        if let v = r["playwright"] { s.playwright = parsePlaywright(v, diags) }
        return s
    }

    static func login(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector) -> ClaudeLogin? {
        guard let s = v.string(what, diags) else { return nil }
        if let l = ClaudeLogin(rawValue: s) { return l }
        diags.error(v.location, "\(what) must be own-login or shared, got '\(printable(s))'")
        return nil
    }

    static func tierList(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector) -> [Tier] {
        var out: [Tier] = []
        for (t, loc) in v.stringList(what, diags) ?? [] {
            if let tier = Tier(rawValue: t), tier != .admin {
                out.append(tier)
            } else {
                diags.error(loc, "\(what) '\(printable(t))' must be power-user or namespace-owner")
            }
        }
        return out
    }

    static func parseClaude(_ v: YAMLValue, _ diags: DiagnosticCollector) -> ClaudeAuthSettings? {
        guard let r = KeyedReader(v, what: "auth.claude", known: ["default", "tiers", "token", "env_file"], diags)
        else { return nil }
        var c = ClaudeAuthSettings()
        if let v = r["default"], let l = login(v, "auth.claude.default", diags) { c.defaultLogin = l }
        if let v = r["tiers"],
            let tr = KeyedReader(v, what: "auth.claude.tiers", known: ["power-user", "namespace-owner"], diags)
        {
            for t in [Tier.powerUser, .namespaceOwner] {
                if let lv = tr[t.rawValue], let l = login(lv, "auth.claude.tiers.\(t.rawValue)", diags) {
                    c.tiers[t] = l
                }
            }
        }
        if let v = r["token"],
            let tr = KeyedReader(v, what: "auth.claude.token", known: ["mount", "path", "key"], diags)
        {
            c.token = VaultValueRef.parse(tr, what: "auth.claude.token", diags)
        }
        if let v = r["env_file"], let p = homeRelativePath(v, "auth.claude.env_file", diags) {
            if p.hasPrefix(".claude/") || p == ".claude.json" {
                diags.error(
                    v.location,
                    "auth.claude.env_file must be outside ~/.claude and ~/.claude.json (Claude Code owns them), e.g. .config/workstation/claude.env"
                )
            } else {
                c.envFile = p
            }
        }
        // The located error where `shared` is asked for but no Vault reference says where the token is.
        if c.token == nil && (c.defaultLogin == .shared || c.tiers.values.contains(.shared)) {
            diags.error(
                r.location,
                "auth.claude: shared login needs token: {path, key} (where the org's token is in Vault); add it, or use own-login"
            )
        }
        return c
    }

    static func parseBeads(_ v: YAMLValue, _ diags: DiagnosticCollector) -> BeadsAuthSettings? {
        let keys = ["mount", "path", "key", "encoding", "delivery", "env_file", "variable", "target", "tiers"]
        guard let r = KeyedReader(v, what: "auth.beads", known: keys, diags),
            let ref = VaultValueRef.parse(r, what: "auth.beads", diags)
        else { return nil }
        var b = BeadsAuthSettings(source: ref)
        if let v = r["encoding"], let e = v.string("auth.beads.encoding", diags) {
            if let enc = SecretEncoding(rawValue: e) {
                b.encoding = enc
            } else {
                diags.error(v.location, "auth.beads.encoding must be base64 or none, got '\(printable(e))'")
            }
        }
        if let v = r["delivery"], let d = v.string("auth.beads.delivery", diags) {
            if let del = BeadsAuthSettings.Delivery(rawValue: d) {
                b.delivery = del
            } else {
                diags.error(
                    v.location,
                    "auth.beads.delivery must be env (DOLT_REMOTE_PASSWORD in an env file) or file (the exact bytes at target), got '\(printable(d))'"
                )
            }
        }
        if let v = r["env_file"], let p = homeRelativePath(v, "auth.beads.env_file", diags) { b.envFile = p }
        if let v = r["target"], let p = homeRelativePath(v, "auth.beads.target", diags) { b.target = p }
        if let v = r["variable"], let n = v.string("auth.beads.variable", diags) {
            if n.isEmpty || n.first!.isNumber
                || !n.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") })
            {
                diags.error(
                    v.location,
                    "auth.beads.variable must be an environment variable name like DOLT_REMOTE_PASSWORD"
                )
            } else {
                b.variable = n
            }
        }
        if let v = r["tiers"] { b.tiers = tierList(v, "auth.beads.tiers", diags) }
        return b
    }

    static func parsePlaywright(_ v: YAMLValue, _ diags: DiagnosticCollector) -> PlaywrightMCPSettings? {
        guard
            let r = KeyedReader(
                v,
                what: "auth.playwright",
                known: ["name", "command", "args", "unit", "url_path", "tiers"],
                diags
            )
        else { return nil }
        var p = PlaywrightMCPSettings()
        if let v = r["name"], let n = plainWord(v, "auth.playwright.name", diags) { p.name = n }
        if let v = r["command"], let c = v.string("auth.playwright.command", diags) {
            if c.isEmpty || c.contains("\n") {
                diags.error(v.location, "auth.playwright.command must be a command on one line, e.g. npx")
            } else {
                p.command = c
            }
        }
        if let v = r["args"], let list = v.stringList("auth.playwright.args", diags) { p.args = list.map(\.0) }
        if let v = r["unit"], let u = v.string("auth.playwright.unit", diags) {
            if !u.hasSuffix("@") {
                diags.error(
                    v.location,
                    "auth.playwright.unit must be a template name ending in @ listed in units:, e.g. playwright-mcp@"
                )
            } else {
                p.unit = u
            }
        }
        if let v = r["url_path"], let u = v.string("auth.playwright.url_path", diags) {
            if !u.hasPrefix("/") || u.contains(where: { $0.isWhitespace || $0 == "\"" }) {
                diags.error(v.location, "auth.playwright.url_path must be a URL path like /mcp")
            } else {
                p.urlPath = u
            }
        }
        if let v = r["tiers"] { p.tiers = tierList(v, "auth.playwright.tiers", diags) }
        return p
    }
}

extension Settings {
    /// Credential files under each managed home: `setup_host.secret_files` plus the files the auth items write (the
    /// env files, a beads credential file, a service-account token file). Checked and tightened like the others.
    public var homeSecretFiles: [String] {
        var out = setupHost.secretFiles
        if let c = auth.claude, c.token != nil { out.append(c.envFile) }
        if let b = auth.beads { out.append(b.delivery == .env ? b.envFile : b.target) }
        if let k = kubernetes, k.auth == .serviceAccountToken { out.append(k.tokenFile) }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Cross-checks of `auth:` against the rest of the settings: secrets need `vault:`, a playwright unit must be
    /// one of `units:`, a service-account token needs Vault only when read from it.
    func checkAuth(_ r: KeyedReader, _ diags: DiagnosticCollector) {
        let loc = r["auth"]?.location ?? location(of: "auth")
        let needsVault = auth.claude?.token != nil || auth.beads != nil || kubernetes?.serviceAccountToken != nil
        if needsVault && vault == nil {
            diags.error(
                loc,
                "auth secrets (claude token, beads credential, kubernetes service-account token) are read from Vault; add vault: {url: ...} to the settings"
            )
        }
        if let v = vault {
            var authTargets: [String] = []
            if let c = auth.claude, c.token != nil { authTargets.append(c.envFile) }
            if let b = auth.beads { authTargets.append(b.delivery == .env ? b.envFile : b.target) }
            if let k = kubernetes, k.auth == .serviceAccountToken, k.serviceAccountToken != nil {
                authTargets.append(k.tokenFile)
            }
            if Set(authTargets).count != authTargets.count {
                diags.error(
                    loc,
                    "auth: two auth items write the same file (~/\(authTargets.joined(separator: ", ~/"))); give each its own"
                )
            }
            for f in v.secretFiles {
                if Planner.authSecretNames.contains(f.name) {
                    diags.error(loc, "vault.secret_files name '\(f.name)' is reserved for auth:; rename it")
                }
                if authTargets.contains(f.target) || f.target == v.helperFile {
                    diags.error(
                        loc,
                        "vault.secret_files '\(f.name)' writes ~/\(f.target), which an auth item or the Vault helper writes too; choose another target"
                    )
                }
            }
            if authTargets.contains(v.helperFile) {
                diags.error(loc, "auth: an env file is the Vault helper file ~/\(v.helperFile); choose another")
            }
        }
        if let u = auth.playwright?.unit, !units.contains(where: { $0.template == u }) {
            diags.error(
                r["auth"]?.location ?? loc,
                "auth.playwright.unit '\(printable(u))' is not among units: (\(units.map(\.template).joined(separator: ", "))); add it there with its port range, or remove unit to use the stdio command"
            )
        }
    }
}
