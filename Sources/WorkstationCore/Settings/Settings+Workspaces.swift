import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a workspace's config base comes from: kept live by a git-sync sidecar, or a volume the cluster keeps
/// current (a `ReadOnlyMany` claim the operator's pipeline fills). Either way it is mounted read-only at
/// `config_base`, the same path as on the host, so the `~/.claude` links point at the same place.
public enum WorkspaceConfigBase: Sendable, Hashable, Codable {
    /// git-sync v4 (`registry.k8s.io/git-sync/git-sync`) pulls `repo` at `ref` every `periodSeconds` into an
    /// `emptyDir` the agent mounts read-only; the checkout appears atomically (a symlink swap).
    case gitSync(repo: String, ref: String, periodSeconds: Int, image: String)
    /// An existing claim, mounted read-only.
    case claim(name: String)
}

/// How a workspace gets its per-person secrets (spec section 7), never from workstation itself.
public enum WorkspaceSecrets: String, Sendable, Hashable, Codable, CaseIterable {
    /// Vault Agent Injector annotations: each of `vault.secret_files` that applies to the person appears in
    /// `/vault/secrets/<name>` of the agent container; Vault's Kubernetes auth role is `secrets_role`.
    case vaultInjector = "vault-injector"
    /// The Secret `workspace-<os_user>` that the operator's pipeline fills, mounted read-only at
    /// `/run/workstation/secrets` (optional: the workspace starts without it).
    case secret
    /// No secrets are mounted.
    case none
}

/// How the dispatcher's connection to a workspace is protected (docs/scale-out.md, "The upstream check").
public enum WorkspaceTLSMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// A ghostunnel sidecar terminates TLS on the Service port with the workspace's certificate (Secret
    /// `workspace-<os_user>-tls`), admits only a client certificate named `client_name`, and forwards to the
    /// instance on the pod's loopback; the dispatcher checks that the certificate names the person's Service.
    case mutual
    /// Plain HTTP to the instance; only the NetworkPolicy keeps others out, and nothing proves to the dispatcher
    /// that it reached the person's workspace.
    case none
}

/// The `tls:` part of `workspaces:`.
public struct WorkspaceTLS: Sendable, Hashable, Codable {
    public var mode: WorkspaceTLSMode = .mutual
    /// The TLS sidecar's image (ghostunnel in server mode).
    public var image: String = "ghostunnel/ghostunnel:v1.8.4"
    /// The common name of the dispatcher's client certificate; the sidecar admits no other (`--allow-cn`).
    public var clientName: String = "workstation-dispatch"
    public init() {}
}

/// The `dispatcher:` part of `workspaces:`: where the dispatcher's connections to the workspaces come from.
public struct WorkspaceDispatcher: Sendable, Hashable, Codable {
    /// True: the dispatcher runs in the cluster; `render workspaces` prints its Deployment and Service, and the
    /// NetworkPolicies admit its pods. It then routes kubernetes-placed people only.
    public var inCluster: Bool = false
    /// The image of the in-cluster dispatcher (a `workstation` binary); required with `in_cluster: true`.
    public var image: String?
    /// CIDRs the host's dispatcher connects from as the pods see it (the host's address, or its node's): the
    /// NetworkPolicies admit them. Needed unless the dispatcher runs in the cluster.
    public var sources: [String] = []
    /// Replicas of the in-cluster dispatcher.
    public var replicas: Int = 2
    /// The in-cluster dispatcher's port (its settings' `dispatch.listen` must be `0.0.0.0:<port>`).
    public var port: Int = 8080
    public init() {}
}

/// `workspaces:` in workstation.yaml: how kubernetes-placed people's workspaces are rendered
/// (`workstation render workspaces`, docs/scale-out.md). Required as soon as anyone is placed on Kubernetes;
/// every key but `image` and `config_base` has a default.
///
/// ```yaml
/// workspaces:
///   namespace: workstation
///   image: registry.example.org/workstation/agent:2026.12   # runs `t3 serve`; HOME is the claim
///   config_base: {git_sync: {repo: https://git.example.org/carol/config-base.git, ref: main}}  # or {claim: NAME}
///   home_size: {power-user: 20Gi, namespace-owner: 10Gi}
///   cpu_request: {power-user: 500m, namespace-owner: 250m}
///   storage_class: ~                    # the cluster's default class
///   read_only_root: true
///   port: 3773                          # the Service port
///   service_host: "{service}.{namespace}.svc.cluster.local"   # what the dispatcher connects to
///   secrets: {from: vault-injector, role: "workspace-{os_user}"}   # or {from: secret}, {from: none}
///   tls: {mode: mutual, image: ghostunnel/ghostunnel:v1.8.4, client_name: workstation-dispatch}
///   dispatcher: {in_cluster: false, sources: [192.0.2.10/32]}
/// ```
public struct WorkspaceSettings: Sendable, Hashable, Codable {
    /// The namespace of every workspace object (a DNS-1123 label).
    public var namespace: String = "workstation"
    /// The agent image: it must run `t3 serve` as the pod's user, honouring `T3CODE_HOST`, `T3CODE_PORT` and
    /// `HOME`, and provide `/bin/sh` for the home-seeding init container.
    public var image: String
    public var configBase: WorkspaceConfigBase
    /// Size of each tier's home claim (a Kubernetes quantity, e.g. `20Gi`).
    public var homeSize: [Tier: String] = [.powerUser: "20Gi", .namespaceOwner: "10Gi"]
    /// CPU request of each tier's agent container (no CPU limit: throttling an interactive agent helps nobody).
    public var cpuRequest: [Tier: String] = [.powerUser: "500m", .namespaceOwner: "250m"]
    /// The claims' storage class; nil: the cluster's default.
    public var storageClass: String?
    /// The agent container's root file system is read-only (HOME is the claim, `/tmp` an `emptyDir`).
    public var readOnlyRoot: Bool = true
    /// The Service port (the ghostunnel sidecar's with TLS, else the instance's).
    public var port: Int = 3773
    /// What the dispatcher connects to: `{service}` and `{namespace}` are replaced.
    public var serviceHost: String = "{service}.{namespace}.svc.cluster.local"
    public var secrets: WorkspaceSecrets = .vaultInjector
    /// Vault's Kubernetes auth role of each workspace (`{os_user}` replaced), for `secrets: vault-injector`.
    public var secretsRole: String = "workspace-{os_user}"
    public var tls = WorkspaceTLS()
    public var dispatcher = WorkspaceDispatcher()

    public init(image: String, configBase: WorkspaceConfigBase) {
        self.image = image
        self.configBase = configBase
    }

    static let keys = [
        "namespace", "image", "config_base", "home_size", "cpu_request", "storage_class", "read_only_root", "port",
        "service_host", "secrets", "tls", "dispatcher",
    ]

    /// The host name of `osUser`'s workspace Service as the dispatcher reaches it (`service_host`).
    public func serviceHost(for osUser: String) -> String {
        serviceHost.replacingOccurrences(of: "{service}", with: workspaceObjectName(osUser) ?? osUser)
            .replacingOccurrences(of: "{namespace}", with: namespace)
    }

    /// The name the workspace's certificate must carry (and the dispatcher checks): `<service>.<namespace>.svc`.
    public func tlsName(for osUser: String) -> String {
        "\(workspaceObjectName(osUser) ?? osUser).\(namespace).svc"
    }

    /// Reads the `workspaces:` mapping. `image` and `config_base` are required.
    static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> WorkspaceSettings? {
        guard let r = KeyedReader(v, what: "workspaces", known: keys, diags) else { return nil }
        let image = r.required("image", diags).flatMap { imageReference($0, "workspaces.image", diags) }
        var base: WorkspaceConfigBase?
        if let bv = r.required("config_base", diags) { base = parseConfigBase(bv, diags) }
        var namespace = "workstation"
        if let nv = r["namespace"], let n = nv.string("workspaces.namespace", diags) {
            if isDNSLabel(n) {
                namespace = n
            } else {
                diags.error(
                    nv.location,
                    "workspaces.namespace '\(printable(n))' is not a DNS-1123 label, e.g. workstation"
                )
            }
        }
        func perTier(
            _ key: String,
            _ defaults: [Tier: String],
            _ check: (String) -> Bool,
            _ example: String
        )
            -> [Tier: String]
        {
            var out = defaults
            guard let tv = r[key],
                let tr = KeyedReader(
                    tv,
                    what: "workspaces.\(key)",
                    known: [Tier.powerUser.rawValue, Tier.namespaceOwner.rawValue],
                    diags
                )
            else { return out }
            for tier in [Tier.powerUser, .namespaceOwner] {
                if let qv = tr[tier.rawValue], let q = qv.string("workspaces.\(key).\(tier.rawValue)", diags) {
                    if check(q) {
                        out[tier] = q
                    } else {
                        diags.error(
                            qv.location,
                            "workspaces.\(key).\(tier.rawValue) '\(printable(q))' is not a Kubernetes quantity like \(example)"
                        )
                    }
                }
            }
            return out
        }
        let homeSize = perTier("home_size", [.powerUser: "20Gi", .namespaceOwner: "10Gi"], isStorageQuantity, "20Gi")
        let cpu = perTier("cpu_request", [.powerUser: "500m", .namespaceOwner: "250m"], isCPUQuantity, "500m or 1")
        guard let image, let base else { return nil }
        var s = WorkspaceSettings(image: image, configBase: base)
        s.namespace = namespace
        s.homeSize = homeSize
        s.cpuRequest = cpu
        if let sv = r["storage_class"], let c = sv.string("workspaces.storage_class", diags) {
            if isDNSSubdomain(c) {
                s.storageClass = c
            } else {
                diags.error(sv.location, "workspaces.storage_class '\(printable(c))' is not a storage class name")
            }
        }
        if let bv = r["read_only_root"], let b = bv.bool("workspaces.read_only_root", diags) { s.readOnlyRoot = b }
        if let pv = r["port"], let p = pv.integer("workspaces.port", diags, range: 1024...65534) { s.port = p }
        if let hv = r["service_host"], let h = hv.string("workspaces.service_host", diags) {
            let sample = h.replacingOccurrences(of: "{service}", with: "workspace-alice")
                .replacingOccurrences(of: "{namespace}", with: namespace)
            if !h.contains("{service}") || !isDNSSubdomain(sample) {
                diags.error(
                    hv.location,
                    "workspaces.service_host '\(printable(h))' must be a host name containing {service} (and optionally {namespace}), e.g. {service}.{namespace}.svc.cluster.local"
                )
            } else {
                s.serviceHost = h
            }
        }
        if let sv = r["secrets"],
            let sr = KeyedReader(sv, what: "workspaces.secrets", known: ["from", "role"], diags)
        {
            if let fv = sr["from"], let f = fv.string("workspaces.secrets.from", diags) {
                if let mode = WorkspaceSecrets(rawValue: f) {
                    s.secrets = mode
                } else {
                    diags.error(
                        fv.location,
                        "workspaces.secrets.from must be vault-injector, secret or none, got '\(printable(f))'"
                    )
                }
            }
            if let rv = sr["role"], let role = rv.string("workspaces.secrets.role", diags) {
                let sample = role.replacingOccurrences(of: "{os_user}", with: "alice")
                if sample.isEmpty
                    || !sample.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
                {
                    diags.error(
                        rv.location,
                        "workspaces.secrets.role '\(printable(role))' must be a Vault role name of letters, digits, '-', '_', '.' and {os_user}"
                    )
                } else {
                    s.secretsRole = role
                }
            }
        }
        if let tv = r["tls"],
            let tr = KeyedReader(tv, what: "workspaces.tls", known: ["mode", "image", "client_name"], diags)
        {
            if let mv = tr["mode"], let m = mv.string("workspaces.tls.mode", diags) {
                if let mode = WorkspaceTLSMode(rawValue: m) {
                    s.tls.mode = mode
                } else {
                    diags.error(mv.location, "workspaces.tls.mode must be mutual or none, got '\(printable(m))'")
                }
            }
            if let iv = tr["image"], let i = imageReference(iv, "workspaces.tls.image", diags) { s.tls.image = i }
            if let cv = tr["client_name"], let c = cv.string("workspaces.tls.client_name", diags) {
                if isDNSSubdomain(c) {
                    s.tls.clientName = c
                } else {
                    diags.error(
                        cv.location,
                        "workspaces.tls.client_name '\(printable(c))' must be a certificate name like workstation-dispatch"
                    )
                }
            }
        }
        var sourcesWritten = false  // written but wrong: that error says what to fix
        if let dv = r["dispatcher"],
            let dr = KeyedReader(
                dv,
                what: "workspaces.dispatcher",
                known: ["in_cluster", "image", "sources", "replicas", "port"],
                diags
            )
        {
            if let b = dr["in_cluster"]?.bool("workspaces.dispatcher.in_cluster", diags) { s.dispatcher.inCluster = b }
            if let iv = dr["image"] { s.dispatcher.image = imageReference(iv, "workspaces.dispatcher.image", diags) }
            if let n = dr["replicas"]?.integer("workspaces.dispatcher.replicas", diags, range: 1...16) {
                s.dispatcher.replicas = n
            }
            if let n = dr["port"]?.integer("workspaces.dispatcher.port", diags, range: 1024...65535) {
                s.dispatcher.port = n
            }
            sourcesWritten = dr.has("sources")
            if let list = dr["sources"]?.stringList("workspaces.dispatcher.sources", diags) {
                for (cidr, at) in list {
                    if isCIDR(cidr) {
                        s.dispatcher.sources.append(cidr)
                    } else {
                        diags.error(
                            at,
                            "workspaces.dispatcher.sources: '\(printable(cidr))' is not a CIDR like 192.0.2.10/32"
                        )
                    }
                }
            }
            if s.dispatcher.inCluster, s.dispatcher.image == nil, dr["image"] == nil {
                diags.error(
                    dr.location,
                    "workspaces.dispatcher: in_cluster: true needs image (a workstation image whose entrypoint is the binary)"
                )
            }
        }
        if !s.dispatcher.inCluster, s.dispatcher.sources.isEmpty, !sourcesWritten {
            diags.error(
                r["dispatcher"]?.location ?? r.location,
                "workspaces: the NetworkPolicies would admit nobody; list the host dispatcher's addresses in dispatcher.sources ([192.0.2.10/32]), or set dispatcher.in_cluster: true"
            )
        }
        return s
    }

    private static func parseConfigBase(_ v: YAMLValue, _ diags: DiagnosticCollector) -> WorkspaceConfigBase? {
        guard let r = KeyedReader(v, what: "workspaces.config_base", known: ["git_sync", "claim"], diags) else {
            return nil
        }
        if r.has("git_sync") == r.has("claim") {
            diags.error(
                r.location,
                "workspaces.config_base needs exactly one of git_sync {repo, ref} (a sidecar keeps it live) or claim NAME (a volume the cluster keeps current)"
            )
            return nil
        }
        if let cv = r["claim"] {
            guard let name = cv.string("workspaces.config_base.claim", diags) else { return nil }
            guard isDNSSubdomain(name) else {
                diags.error(cv.location, "workspaces.config_base.claim '\(printable(name))' is not a claim name")
                return nil
            }
            return .claim(name: name)
        }
        guard let gv = r["git_sync"],
            let g = KeyedReader(
                gv,
                what: "workspaces.config_base.git_sync",
                known: ["repo", "ref", "period_seconds", "image"],
                diags
            )
        else { return nil }
        guard let repoValue = g.required("repo", diags), let repo = repoValue.string("git_sync.repo", diags) else {
            return nil
        }
        let remote = repo.hasPrefix("https://") || repo.hasPrefix("ssh://") || repo.hasPrefix("git@")
        if !remote || repo.contains(where: { $0.isWhitespace || $0 == "\"" }) {
            diags.error(
                repoValue.location,
                "workspaces.config_base.git_sync.repo '\(printable(repo))' must be a remote git URL (https://, ssh:// or git@host:path)"
            )
            return nil
        }
        var ref = "main"
        if let rv = g["ref"], let t = plainWord(rv, "workspaces.config_base.git_sync.ref", diags, allowSlash: true) {
            ref = t
        }
        let period = g["period_seconds"]?.integer(
            "workspaces.config_base.git_sync.period_seconds",
            diags,
            range: 5...86400
        )
        var image = "registry.k8s.io/git-sync/git-sync:v4.4.0"
        if let iv = g["image"], let i = imageReference(iv, "workspaces.config_base.git_sync.image", diags) { image = i }
        return .gitSync(repo: repo, ref: ref, periodSeconds: period ?? 60, image: image)
    }
}

extension Settings {
    /// Reads the top-level `placement:` (the default placement of roster people) and `workspaces:`, then checks
    /// them together: a default of `kubernetes` needs the `workspaces:` section.
    mutating func parseWorkspaces(_ r: KeyedReader, _ diags: DiagnosticCollector) {
        if let pv = r["placement"], let text = pv.string("placement", diags) {
            if let p = PersonPlacement(rawValue: text) {
                placement = p
            } else {
                diags.error(pv.location, PersonPlacement.refusal(text, key: "placement"))
            }
        }
        if let wv = r["workspaces"] { workspaces = WorkspaceSettings.parse(wv, diags) }
        if placement == .kubernetes, workspaces == nil, !r.has("workspaces") {
            diags.error(
                r["placement"]?.location ?? r.location,
                "placement: kubernetes needs a workspaces: section (image, config_base...) to render the workspaces from; add it (docs/scale-out.md)"
            )
        }
        if let w = workspaces, case .gitSync = w.configBase {
            let parent = (configBase as NSString).deletingLastPathComponent
            if parent == "/" || parent.isEmpty {
                diags.error(
                    r["config_base"]?.location ?? r["workspaces"]?.location ?? r.location,
                    "config_base \(configBase) is directly under /: a workspace mounts git-sync's directory at its parent; put the base one level deeper (e.g. /srv/workstation/config-base)"
                )
            }
        }
    }
}

/// A container image reference: no whitespace, quotes or control characters (Kubernetes passes it to the runtime
/// as written).
func imageReference(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector) -> String? {
    guard let s = v.string(what, diags) else { return nil }
    let ok =
        !s.isEmpty && s.utf8.count <= 512
        && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "./:_@-".contains($0)) }
        && s.first.map { $0.isLetter || $0.isNumber } == true
    if !ok {
        diags.error(
            v.location,
            "\(what) '\(printable(s))' is not an image reference like registry.example.org/agent:1.0"
        )
        return nil
    }
    return s
}

/// A DNS-1123 subdomain (Kubernetes object and storage class names; host names): lower-case labels of letters,
/// digits and '-', joined by '.', at most 253 characters.
public func isDNSSubdomain(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 253
        && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy {
            isDNSLabel(String($0))
        }
}

/// A Kubernetes storage quantity in binary or decimal units (`20Gi`, `500M`, `1073741824`).
func isStorageQuantity(_ s: String) -> Bool {
    quantity(s, suffixes: ["", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi"]) && s.first != "0"
}

/// A Kubernetes CPU quantity (`500m`, `1`, `1.5`).
func isCPUQuantity(_ s: String) -> Bool { quantity(s, suffixes: ["", "m"]) && s != "0" && s != "0m" }

private func quantity(_ s: String, suffixes: [String]) -> Bool {
    let digits = s.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
    let suffix = s.dropFirst(digits.count)
    guard !digits.isEmpty, digits.first != ".", digits.last != ".", digits.filter({ $0 == "." }).count <= 1 else {
        return false
    }
    return suffixes.contains(String(suffix))
}

/// An IPv4 or IPv6 CIDR (`192.0.2.10/32`, `2001:db8::/64`), checked with `inet_pton(3)`.
func isCIDR(_ s: String) -> Bool {
    let parts = s.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let bits = Int(parts[1]), parts[1].allSatisfy(\.isNumber) else { return false }
    var buffer = [UInt8](repeating: 0, count: 16)
    if parts[0].contains(":") {
        return (0...128).contains(bits) && inet_pton(AF_INET6, String(parts[0]), &buffer) == 1
    }
    return (0...32).contains(bits) && inet_pton(AF_INET, String(parts[0]), &buffer) == 1
}

/// `bytes` as a Kubernetes quantity in binary units (`3Gi`, `512Mi`, or plain bytes).
public func kubernetesQuantity(_ bytes: UInt64) -> String {
    let s = formatByteSize(bytes)
    guard let last = s.last, "KMGT".contains(last) else { return s }
    return s + "i"
}
