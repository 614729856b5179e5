import Foundation

/// Where a service's API token comes from: an environment variable (wins when set and non-empty), else a file
/// owned by root with no group or other permission bits. Tokens never come from the roster and are never printed.
public struct TokenSource: Sendable, Hashable, Codable {
    /// Environment variable name, e.g. `AUTHENTIK_TOKEN`, `VAULT_TOKEN`.
    public var environment: String?
    /// Host path of a file holding the token (surrounding whitespace is trimmed), e.g. `/etc/workstation/authentik.token`.
    public var file: String?
    public init(environment: String?, file: String?) {
        self.environment = environment
        self.file = file
    }
}

/// `authentik:` in workstation.yaml: the IdP that gates the web front door (spec section 2, ADR-0006).
/// Configured when the section is present; `url` is then required.
public struct AuthentikSettings: Sendable, Hashable, Codable {
    /// Base URL, e.g. `https://auth.example.org` (the API is under `/api/v3/`).
    public var url: String
    public var token: TokenSource = TokenSource(environment: "AUTHENTIK_TOKEN", file: nil)
    /// The gate group whose membership is reconciled from the roster.
    public var gateGroup: String = "T3 Users"
    /// The host name the edge policy gates (`render authentik-policy`).
    public var gateHost: String = "t3.example.org"
    /// Per-request deadline, seconds.
    public var timeout: Int = 10
    /// `page_size` asked of list endpoints.
    public var pageSize: Int = 100
    /// The provider's JWKS (RFC 7517), e.g. `https://auth.example.org/application/o/t3/jwks/`: `apply` fetches it
    /// into `jwksFile`, which the dispatcher verifies `X-authentik-jwt` against (docs/dispatch.md).
    public var jwksURL: String?
    /// Where `apply` writes the JWKS (root-owned, 0644): the dispatcher's `dispatch.jwt.jwks_file`.
    public var jwksFile: String = "/var/lib/workstation/authentik-jwks.json"
    /// Host path of a PEM file of CA certificates trusted for `url` and `jwks_url` besides the system's (a
    /// private CA); nil: the system's store, or `SSL_CERT_FILE` when set.
    public var caFile: String?
    public init(url: String) { self.url = url }

    static let keys = [
        "url", "token_file", "token_env", "gate_group", "gate_host", "timeout", "page_size", "jwks_url", "jwks_file",
        "ca_file",
    ]

    /// Reads the `authentik:` mapping; every key but `url` has a default.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> AuthentikSettings? {
        guard let r = KeyedReader(v, what: "authentik", known: keys, diags) else { return nil }
        guard let url = r.required("url", diags).flatMap({ httpURL($0, "authentik.url", diags) }) else { return nil }
        var s = AuthentikSettings(url: url)
        s.token = parseToken(r, what: "authentik", defaultEnv: "AUTHENTIK_TOKEN", diags)
        if let v = r["gate_group"], let g = v.string("authentik.gate_group", diags) {
            if g.isEmpty || g.contains("\n") || g.contains("\"") {
                diags.error(v.location, "authentik.gate_group must be a group name on one line without quotes")
            } else {
                s.gateGroup = g
            }
        }
        if let v = r["gate_host"], let h = v.string("authentik.gate_host", diags) {
            if h.isEmpty
                || !h.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":") })
            {
                diags.error(v.location, "authentik.gate_host must be a host name like t3.example.org")
            } else {
                s.gateHost = h
            }
        }
        if let v = r["timeout"], let n = v.integer("authentik.timeout", diags, range: 1...300) { s.timeout = n }
        if let v = r["page_size"], let n = v.integer("authentik.page_size", diags, range: 1...1000) { s.pageSize = n }
        if let v = r["jwks_url"] { s.jwksURL = httpURL(v, "authentik.jwks_url", diags, keepTrailingSlash: true) }
        if let v = r["jwks_file"], let p = absolutePath(v, "authentik.jwks_file", diags) { s.jwksFile = p }
        if let v = r["ca_file"] { s.caFile = absolutePath(v, "authentik.ca_file", diags) }
        return s
    }
}

/// `kubernetes:` in workstation.yaml: the cross-check against the live `k8s_users` map, the RBAC manifests and
/// the per-user OIDC kubeconfig (spec section 6, ADR-0005).
public struct KubernetesSettings: Sendable, Hashable, Codable {
    /// Host path of the `k8s_users` map (JSON or YAML; e.g. `terraform output -json k8s_users`). nil: no cross-check.
    public var k8sUsersFile: String?
    /// API server URL for the kubeconfig, e.g. `https://k8s.example.org:6443`. nil: no kubeconfig.
    public var server: String?
    public var clusterName: String = "kubernetes"
    /// OIDC issuer URL (kubelogin `--oidc-issuer-url`).
    public var oidcIssuerURL: String?
    /// OIDC client id (kubelogin `--oidc-client-id`).
    public var oidcClientID: String?
    /// Host path of the cluster CA certificate (PEM); read at observe and embedded as `certificate-authority-data`.
    public var caFile: String?
    /// Base64 PEM, used when `ca_file` is not set.
    public var caData: String?
    /// Prefix the API server adds to the OIDC username (`--oidc-username-prefix`); the binding subject is prefix + email.
    public var usernamePrefix: String = ""
    /// Where the kubeconfig goes, relative to the home.
    public var kubeconfigPath: String = ".kube/config"
    /// Name of the NEW read-only ClusterRole for power-users (never the existing `oidc-power-user`).
    public var readonlyRole: String = "oidc-power-user-readonly"
    /// Name of the ClusterRole that lets namespace-owners list namespaces and nodes.
    public var namespaceListRole: String = "oidc-namespace-owner-list"
    /// kubelogin's `--grant-type`: only grants that open no local port (REFERENCE "Data plane and local listeners").
    public var grantType: KubeloginGrant = .authcodeKeyboard
    /// kubelogin's `--oidc-redirect-url` for `authcode-keyboard`: where the IdP sends the browser with the code,
    /// which the person then types in. The default is the out-of-band URI kubelogin documents; it must be
    /// registered as a redirect URI of the OIDC client.
    public var redirectURL: String = KubeloginGrant.outOfBand
    /// `oidc` (kubelogin, the default) or `service-account-token` (the fallback: `tokenFile` in the kubeconfig).
    public var auth: KubernetesAuth = .oidc
    /// For `service-account-token`: the token file, relative to the home (the person owns it, 0600).
    public var tokenFile: String = ".kube/token"
    /// For `service-account-token`: where each person's token is in Vault (`path` may hold `{os_user}`); nil: the
    /// token file is put there by the operator or the person, and `doctor` checks it.
    public var serviceAccountToken: VaultValueRef?
    public init() {}

    /// True when a kubeconfig can be written: the server, and for OIDC the issuer and client id.
    public var kubeconfigConfigured: Bool {
        server != nil && (auth == .serviceAccountToken || (oidcIssuerURL != nil && oidcClientID != nil))
    }

    static let keys = [
        "k8s_users_file", "server", "cluster_name", "oidc_issuer_url", "oidc_client_id", "ca_file", "ca_data",
        "username_prefix", "kubeconfig_path", "readonly_role", "namespace_list_role", "grant_type", "redirect_url",
        "auth", "token_file", "service_account_token",
    ]

    /// Reads the `kubernetes:` mapping; every key has a default.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> KubernetesSettings? {
        guard let r = KeyedReader(v, what: "kubernetes", known: keys, diags) else { return nil }
        var s = KubernetesSettings()
        if let v = r["k8s_users_file"] { s.k8sUsersFile = absolutePath(v, "kubernetes.k8s_users_file", diags) }
        if let v = r["server"] { s.server = httpURL(v, "kubernetes.server", diags) }
        if let v = r["oidc_issuer_url"] {
            s.oidcIssuerURL = httpURL(v, "kubernetes.oidc_issuer_url", diags, keepTrailingSlash: true)
        }
        if let v = r["oidc_client_id"] { s.oidcClientID = plainWord(v, "kubernetes.oidc_client_id", diags) }
        if let v = r["cluster_name"], let n = plainWord(v, "kubernetes.cluster_name", diags) { s.clusterName = n }
        if let v = r["ca_file"] { s.caFile = absolutePath(v, "kubernetes.ca_file", diags) }
        if let v = r["ca_data"], let d = v.string("kubernetes.ca_data", diags) {
            if Data(base64Encoded: d) == nil {
                diags.error(v.location, "kubernetes.ca_data must be base64 (the PEM certificate, base64-encoded)")
            } else {
                s.caData = d
            }
        }
        if let v = r["username_prefix"], let p = v.string("kubernetes.username_prefix", diags) { s.usernamePrefix = p }
        if let v = r["kubeconfig_path"], let p = homeRelativePath(v, "kubernetes.kubeconfig_path", diags) {
            s.kubeconfigPath = p
        }
        if let v = r["readonly_role"], let n = plainWord(v, "kubernetes.readonly_role", diags) {
            if n == "oidc-power-user" {
                diags.error(
                    v.location,
                    "kubernetes.readonly_role must not be oidc-power-user: that role grants write and Secrets; use a new name"
                )
            } else {
                s.readonlyRole = n
            }
        }
        if let v = r["namespace_list_role"], let n = plainWord(v, "kubernetes.namespace_list_role", diags) {
            s.namespaceListRole = n
        }
        if let v = r["grant_type"], let g = v.string("kubernetes.grant_type", diags) {
            if let grant = KubeloginGrant(rawValue: g) {
                s.grantType = grant
            } else {
                diags.error(v.location, KubeloginGrant.refusal(g))
            }
        }
        if let v = r["redirect_url"], let u = v.string("kubernetes.redirect_url", diags) {
            if let why = KubeloginGrant.redirectProblem(u) {
                diags.error(v.location, "kubernetes.redirect_url '\(printable(u))' \(why)")
            } else if s.grantType != .authcodeKeyboard {
                diags.error(
                    v.location,
                    "kubernetes.redirect_url is used by grant_type authcode-keyboard only; remove it (grant_type is \(s.grantType.rawValue))"
                )
            } else {
                s.redirectURL = u
            }
        }
        if let v = r["auth"], let a = v.string("kubernetes.auth", diags) {
            if let auth = KubernetesAuth(rawValue: a) {
                s.auth = auth
            } else {
                diags.error(
                    v.location,
                    "kubernetes.auth must be oidc (kubelogin, the default) or service-account-token, got '\(printable(a))'"
                )
            }
        }
        if let v = r["token_file"], let p = homeRelativePath(v, "kubernetes.token_file", diags) { s.tokenFile = p }
        if let v = r["service_account_token"],
            let tr = KeyedReader(v, what: "kubernetes.service_account_token", known: ["mount", "path", "key"], diags)
        {
            s.serviceAccountToken = VaultValueRef.parse(
                tr,
                what: "kubernetes.service_account_token",
                diags,
                allowUserPlaceholder: true
            )
        }
        if s.auth == .oidc, let v = r["service_account_token"] ?? r["token_file"] {
            diags.error(
                v.location,
                "kubernetes.token_file and service_account_token are used with auth: service-account-token only; set it or remove them"
            )
        }
        if s.auth == .serviceAccountToken {
            if s.server == nil {
                diags.error(r.location, "kubernetes: auth service-account-token needs server (the API server URL)")
            }
            if s.tokenFile == s.kubeconfigPath {
                diags.error(
                    r["token_file"]?.location ?? r.location,
                    "kubernetes.token_file must differ from kubeconfig_path"
                )
            }
        }
        let kc = [s.server, s.oidcIssuerURL, s.oidcClientID].compactMap { $0 }.count
        if s.auth == .oidc && kc != 0 && kc != 3 {
            diags.error(
                r.location,
                "kubernetes: a kubeconfig needs server, oidc_issuer_url and oidc_client_id together; set all three or none"
            )
        }
        return s
    }
}

/// The kubelogin grant types a generated kubeconfig may use: those that open no port on this host, where any
/// other account could bind kubelogin's `localhost:8000` first and receive the authorization code
/// (kubelogin `docs/usage.md`, "Authentication flows").
public enum KubeloginGrant: String, Sendable, Hashable, Codable, CaseIterable {
    /// The person opens the printed URL in their own browser and types the code back (`--grant-type=authcode-keyboard
    /// --oidc-redirect-url=...`). The default.
    case authcodeKeyboard = "authcode-keyboard"
    /// RFC 8628: the person confirms a short code at the IdP (`--grant-type=device-code`); the IdP must offer it.
    case deviceCode = "device-code"

    /// The out-of-band redirect URI kubelogin documents for `authcode-keyboard` (the IdP shows the code).
    public static let outOfBand = "urn:ietf:wg:oauth:2.0:oob"

    /// The located message for a grant type that is not allowed, with the fix.
    static func refusal(_ g: String) -> String {
        switch g {
        case "auto", "authcode":
            "kubernetes.grant_type \(g) makes kubelogin listen on localhost:8000 for the browser's redirect; any account on this host can take that port first and capture the authorization code; use grant_type: authcode-keyboard (the default) or device-code"
        case "password", "client-credentials":
            "kubernetes.grant_type \(g) does not log the person in through the IdP's own page (\(g == "password" ? "their password passes through kubelogin on this shared host" : "it needs a shared client secret in every kubeconfig")); use grant_type: authcode-keyboard (the default) or device-code"
        default:
            "kubernetes.grant_type must be authcode-keyboard (the default) or device-code, got '\(printable(g))'"
        }
    }

    /// Why a redirect URL is refused, or nil. A loopback `http(s)` address would hand the code to whoever listens
    /// there when the browser runs on this host.
    static func redirectProblem(_ u: String) -> String? {
        if u == outOfBand { return nil }
        guard let url = URL(string: u), let scheme = url.scheme?.lowercased(), !u.contains(where: \.isWhitespace) else {
            return "is not a URL; use \(outOfBand) (the default) or an https page of the IdP that shows the code"
        }
        if scheme == "http" || scheme == "https" {
            let host = (url.host ?? "").lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            if host.isEmpty || host == "localhost" || host.hasSuffix(".localhost") || host.hasPrefix("127.")
                || host == "::1" || host == "0.0.0.0" || host == "::"
            {
                return
                    "is a loopback address: a browser on this host would hand the authorization code to whichever account holds that port; use \(outOfBand) (the default) or an https page of the IdP that shows the code"
            }
            if scheme == "http" { return "must use https (the authorization code travels in it)" }
            return nil
        }
        return "must be \(outOfBand) or an https URL"
    }
}

/// One secret file per eligible user, read from Vault KV v2 and written into the home only if absent (spec section 7).
public struct SecretFileSpec: Sendable, Hashable, Codable {
    /// Short name, used in plan lines and state (`ha-mcp`).
    public var name: String
    /// KV v2 mount, e.g. `secret`.
    public var mount: String = "secret"
    /// Path under the mount, e.g. `openclaw`.
    public var path: String
    /// Key inside the secret's data.
    public var key: String
    /// Target relative to the home, e.g. `.claude.json`, `code/.beads/credential`.
    public var target: String
    /// Tiers that get it; empty means every provisioned tier.
    public var tiers: [Tier] = []
    /// Roster flags; when non-empty, only users holding at least one of them get it.
    public var flags: [String] = []
    /// File content with `{{value}}` (raw), `{{value_json}}` (a JSON string literal) or `{{value_shell}}` (a POSIX
    /// shell single-quoted word) replaced; nil: the value itself.
    public var template: String?
    /// How the Vault value becomes bytes (`base64`: decoded, exact bytes) before the template.
    public var encoding: SecretEncoding = .none
    /// Home-relative paths whose presence means the person set this up themselves: the file is then not written
    /// (e.g. `.claude/.credentials.json`, an interactive Claude login, for the shared token).
    public var unlessPresent: [String] = []
    public init(name: String, path: String, key: String, target: String) {
        self.name = name
        self.path = path
        self.key = key
        self.target = target
    }

    /// `secret/openclaw#ha_url`: where the value lives, never the value.
    public var reference: String { "\(mount)/\(path)#\(key)" }

    /// True when a roster entry gets this file.
    public func applies(to e: RosterEntry) -> Bool {
        (tiers.isEmpty || tiers.contains(e.tier)) && (flags.isEmpty || flags.contains(where: e.flags.contains))
    }
}

/// `vault:` in workstation.yaml: the per-user Vault helper and the secret files (spec sections 3 and 7).
public struct VaultSettings: Sendable, Hashable, Codable {
    /// `VAULT_ADDR`, e.g. `https://vault.example.org`.
    public var url: String
    /// `X-Vault-Namespace` / `VAULT_NAMESPACE`, when set.
    public var namespace: String?
    /// The root token source for KV reads: `VAULT_TOKEN` wins, else the file.
    public var token: TokenSource = TokenSource(environment: "VAULT_TOKEN", file: nil)
    /// OIDC role per tier (chosen at the Vault web UI login, `VAULT_OIDC_ROLE`); default: the tier name.
    public var oidcRoles: [Tier: String] = [:]
    /// The per-user helper env file, relative to the home.
    public var helperFile: String = ".config/workstation/vault.env"
    /// System profile snippet that sources the helper at login (a derived file).
    public var profileSnippet: String = "/etc/profile.d/workstation-vault.sh"
    public var secretFiles: [SecretFileSpec] = []
    /// Per-request deadline, seconds.
    public var timeout: Int = 10
    /// Host path of a PEM file of CA certificates trusted for `url` besides the system's (a private CA); nil: the
    /// system's store, or `SSL_CERT_FILE` when set.
    public var caFile: String?
    public init(url: String) { self.url = url }

    /// The role a tier logs in with.
    public func oidcRole(_ t: Tier) -> String { oidcRoles[t] ?? t.rawValue }

    static let keys = [
        "url", "namespace", "token_file", "token_env", "oidc_roles", "helper_file", "profile_snippet", "secret_files",
        "timeout",
        "ca_file",
    ]

    /// Reads the `vault:` mapping; every key but `url` has a default.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> VaultSettings? {
        guard let r = KeyedReader(v, what: "vault", known: keys, diags) else { return nil }
        guard let url = r.required("url", diags).flatMap({ httpURL($0, "vault.url", diags) }) else { return nil }
        var s = VaultSettings(url: url)
        s.token = parseToken(r, what: "vault", defaultEnv: "VAULT_TOKEN", diags)
        if let v = r["namespace"] { s.namespace = plainWord(v, "vault.namespace", diags, allowSlash: true) }
        if let v = r["timeout"], let n = v.integer("vault.timeout", diags, range: 1...300) { s.timeout = n }
        if let v = r["ca_file"] { s.caFile = absolutePath(v, "vault.ca_file", diags) }
        if let v = r["helper_file"], let p = homeRelativePath(v, "vault.helper_file", diags) { s.helperFile = p }
        if let v = r["profile_snippet"], let p = absolutePath(v, "vault.profile_snippet", diags) {
            s.profileSnippet = p
        }
        if let v = r["oidc_roles"],
            let rr = KeyedReader(v, what: "vault.oidc_roles", known: Tier.allCases.map(\.rawValue), diags)
        {
            for t in Tier.allCases {
                if let rv = rr[t.rawValue], let n = plainWord(rv, "vault.oidc_roles.\(t.rawValue)", diags) {
                    s.oidcRoles[t] = n
                }
            }
        }
        if let v = r["secret_files"] {
            guard let seq = v.node.sequence else {
                diags.error(v.location, "vault.secret_files must be a list of {name, path, key, target}")
                return s
            }
            for item in seq {
                let iv = YAMLValue(node: item, file: v.file)
                if let f = parseSecretFile(iv, diags) {
                    if s.secretFiles.contains(where: { $0.name == f.name }) {
                        diags.error(iv.location, "secret file name '\(f.name)' is used twice")
                    }
                    if s.secretFiles.contains(where: { $0.target == f.target }) {
                        diags.error(iv.location, "two secret files write ~/\(f.target)")
                    }
                    s.secretFiles.append(f)
                }
            }
        }
        return s
    }

    static func parseSecretFile(_ v: YAMLValue, _ diags: DiagnosticCollector) -> SecretFileSpec? {
        let keys = ["name", "mount", "path", "key", "target", "tiers", "flags", "template", "encoding"]
        guard let r = KeyedReader(v, what: "a secret file", known: keys, diags),
            let name = r.required("name", diags).flatMap({ plainWord($0, "secret file name", diags) }),
            let path = r.required("path", diags).flatMap({ plainWord($0, "secret file path", diags, allowSlash: true) }
            ),
            let key = r.required("key", diags).flatMap({ $0.string("secret file key", diags) }),
            let target = r.required("target", diags).flatMap({ homeRelativePath($0, "secret file target", diags) })
        else { return nil }
        var f = SecretFileSpec(name: name, path: path, key: key, target: target)
        if let mv = r["mount"], let m = plainWord(mv, "secret file mount", diags, allowSlash: true) { f.mount = m }
        if let tv = r["tiers"], let list = tv.stringList("secret file tiers", diags) {
            for (t, loc) in list {
                if let tier = Tier(rawValue: t), tier != .admin {
                    f.tiers.append(tier)
                } else {
                    diags.error(loc, "secret file tier '\(printable(t))' must be power-user or namespace-owner")
                }
            }
        }
        if let fv = r["flags"], let list = fv.stringList("secret file flags", diags) { f.flags = list.map(\.0) }
        if let tv = r["template"], let t = tv.string("secret file template", diags) {
            if !t.contains("{{value}}") && !t.contains("{{value_json}}") && !t.contains("{{value_shell}}") {
                diags.error(
                    tv.location,
                    "secret file template must contain {{value}}, {{value_json}} or {{value_shell}} where the secret goes"
                )
            } else {
                f.template = t
            }
        }
        if let ev = r["encoding"], let e = ev.string("secret file encoding", diags) {
            if let enc = SecretEncoding(rawValue: e) {
                f.encoding = enc
            } else {
                diags.error(ev.location, "secret file encoding must be none or base64, got '\(printable(e))'")
            }
        }
        return f
    }
}

// MARK: shared readers

private func parseToken(_ r: KeyedReader, what: String, defaultEnv: String, _ diags: DiagnosticCollector) -> TokenSource
{
    var t = TokenSource(environment: defaultEnv, file: nil)
    if let v = r["token_env"], let e = v.string("\(what).token_env", diags) {
        if e.isEmpty || !e.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) {
            diags.error(v.location, "\(what).token_env must be an environment variable name like \(defaultEnv)")
        } else {
            t.environment = e
        }
    }
    if let v = r["token_file"] { t.file = absolutePath(v, "\(what).token_file", diags) }
    return t
}

/// An `http://` or `https://` URL, without a trailing slash unless kept (an OIDC issuer must match exactly).
func httpURL(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector, keepTrailingSlash: Bool = false) -> String? {
    guard var s = v.string(what, diags) else { return nil }
    guard let u = URL(string: s), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil,
        !s.contains(where: \.isWhitespace)
    else {
        diags.error(
            v.location,
            "\(what) must be an http(s) URL like https://service.example.org, got '\(printable(s))'"
        )
        return nil
    }
    while !keepTrailingSlash && s.hasSuffix("/") { s.removeLast() }
    return s
}

/// A name of letters, digits, `-`, `_`, `.` (and `/` when allowed).
func plainWord(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector, allowSlash: Bool = false) -> String? {
    guard let s = v.string(what, diags) else { return nil }
    let ok =
        !s.isEmpty
        && s.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0) || (allowSlash && $0 == "/"))
        }
        && !s.hasPrefix("/") && !s.split(separator: "/").contains("..")
    if !ok {
        diags.error(
            v.location,
            "\(what) '\(printable(s))' may contain only letters, digits, '-', '_', '.'\(allowSlash ? " and '/'" : "")"
        )
    }
    return ok ? s : nil
}

/// A plain path relative to the home: no leading `/`, no `.` or `..` components.
func homeRelativePath(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector) -> String? {
    guard let s = v.string(what, diags) else { return nil }
    let parts = s.split(separator: "/", omittingEmptySubsequences: false)
    if s.isEmpty || s.hasPrefix("/") || s.hasPrefix("~")
        || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) || s.contains("\n")
    {
        diags.error(v.location, "\(what) must be a path relative to the home like .kube/config, got '\(printable(s))'")
        return nil
    }
    return s
}
