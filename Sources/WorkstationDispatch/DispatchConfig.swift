import Foundation
import NIOCore
import WorkstationCore

/// Where a listener binds: a TCP address or a unix domain socket.
///
/// Written in settings as `HOST:PORT` (`127.0.0.1:3773`, `[::1]:3773`) or `unix:/ABSOLUTE/PATH`.
public enum ListenAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// Parses `HOST:PORT`, `[IPV6]:PORT` or `unix:/PATH`. HOST must be an IP address (no name lookup).
    /// - Returns: the address, or a `ListenAddressError` saying what is wrong and how to write it.
    public static func parse(_ text: String) -> Result<ListenAddress, ListenAddressError> {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else {
                return .failure(
                    .init(
                        text: text,
                        reason: "a unix socket path must be absolute, e.g. unix:/run/workstation-dispatch/dispatch.sock"
                    )
                )
            }
            return .success(.unix(path: path))
        }
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(.init(text: text, reason: "write an IPv6 address as [ADDRESS]:PORT"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(.init(text: text, reason: "write HOST:PORT, e.g. 127.0.0.1:3773, or unix:/PATH"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            return .failure(.init(text: text, reason: "port must be a number from 0 to 65535"))
        }
        guard (try? SocketAddress(ipAddress: String(host), port: port)) != nil else {
            return .failure(
                .init(text: text, reason: "'\(host)' is not an IP address; name the address, not a host name")
            )
        }
        return .success(.tcp(host: String(host), port: port))
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// `DispatchConfig.trustedProxies` parsed once, for the check on every new TCP connection (identity `jwt` only).
struct TrustedPeers: Sendable {
    /// Trusted IPs as `SocketAddress.ipAddress` prints them; empty means every address (the token is the proof).
    private let ips: Set<String>

    init(_ config: DispatchConfig) {
        ips = Set(
            config.trustedProxies.map { entry in
                (try? SocketAddress(ipAddress: entry, port: 0))?.ipAddress ?? entry
            }
        )
    }

    /// True when `address` may send requests: any address when the list is empty, else an exact match;
    /// `::ffff:a.b.c.d` matches `a.b.c.d`.
    func contains(_ address: SocketAddress?) -> Bool {
        if ips.isEmpty { return true }
        guard let address else { return false }
        switch address {
        case .unixDomainSocket: return false
        case .v4, .v6:
            guard var ip = address.ipAddress else { return false }
            if ip.hasPrefix("::ffff:"), ip.contains(".") { ip = String(ip.dropFirst(7)) }
            return ips.contains(ip)
        }
    }
}

/// Why a listen address could not be read.
public struct ListenAddressError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "listen address '\(text)' is invalid: \(reason)" }
}

/// How the dispatcher learns who a request is from (docs/dispatch.md, "Supported deployments").
public enum IdentityMode: String, Sendable, Hashable, CaseIterable {
    /// The forward-auth proxy runs on this host and connects over the unix socket `listen`; the kernel names each
    /// peer (`SO_PEERCRED`, unix(7)) and only `front_proxy_users` are believed.
    case peer
    /// The forward-auth proxy runs on another host: every request carries Authentik's signed `X-authentik-jwt`,
    /// verified against the provider's JWKS; username and groups come from its claims.
    case jwt
}

/// The `dispatch.jwt` section: how `X-authentik-jwt` is verified (RFC 7519 section 7.2, RFC 7515).
public struct JWTSettings: Sendable, Hashable {
    /// The provider's JWKS (RFC 7517) as `workstation apply` fetched it (`authentik.jwks_url`); re-read when it changes.
    public var jwksFile: String = "/var/lib/workstation/authentik-jwks.json"
    /// Expected `iss` claim, exactly (Authentik: `https://HOST/application/o/SLUG/`).
    public var issuer: String = ""
    /// Expected `aud` claim (the provider's client id).
    public var audience: String = ""
    /// Claim carrying the username routed by dispatch.json (Authentik's profile scope: `preferred_username`).
    public var usernameClaim: String = "preferred_username"
    /// Claim carrying the list of group names (Authentik: `groups`).
    public var groupsClaim: String = "groups"

    public init() {}
    public static let keys = ["jwks_file", "issuer", "audience", "username_claim", "groups_claim"]
}

/// Settings of `workstation dispatch`, the `dispatch:` section of `workstation.yaml`.
///
/// ```yaml
/// dispatch:
///   identity: peer                      # peer (front proxy on this host) | jwt (front proxy on another host)
///   listen: unix:/run/workstation-dispatch/dispatch.sock   # peer: a unix socket; jwt: HOST:PORT allowed
///   front_proxy_users: [www-data]       # peer: accounts whose connections are believed (SO_PEERCRED)
///   jwt:                                # jwt: required; peer: optional (tokens are then checked too)
///     jwks_file: /var/lib/workstation/authentik-jwks.json
///     issuer: https://auth.example.org/application/o/t3/
///     audience: t3
///   trusted_proxies: []                 # jwt only, optional: the remote edge's addresses
///   metrics_listen: 127.0.0.1:9464      # /healthz and /metrics (no identity is read there)
///   gate_group: T3 Users                # must be one of the person's groups
///   max_active_users: 8                 # distinct users with live connections before new users get 429
///   dispatch_file: /etc/t3-serve/dispatch.json
///   ttyd_user_map: /etc/ttyd-user-map
///   reload_interval_seconds: 1          # how often dispatch.json and the JWKS are checked without requests
///   workspace_tls: {ca_file: ..., cert_file: ..., key_file: ...}   # mutual TLS to Kubernetes workspaces
/// ```
/// Every key has a default; the section itself is optional. A deployment in which a local account could act as
/// another person is refused: a TCP listener in `peer` mode, `jwt` mode without its section, or a trusted address
/// that belongs to this host (`securityProblems`).
public struct DispatchConfig: Sendable, Hashable {
    public var identity: IdentityMode = .peer
    public var listen: ListenAddress = .unix(path: "/run/workstation-dispatch/dispatch.sock")
    public var metricsListen: ListenAddress = .tcp(host: "127.0.0.1", port: 9464)
    /// `peer` mode: account names (or numeric uids) of the front proxy; any other peer of the socket gets 403.
    public var frontProxyUsers: [String] = ["www-data"]
    /// Token verification; required in `jwt` mode.
    public var jwt: JWTSettings?
    /// `jwt` mode: remote peer addresses (IP text) allowed to connect; empty allows any (the token is the proof).
    public var trustedProxies: [String] = []
    /// The group (Authentik group name) a person must hold, matched exactly.
    public var gateGroup: String = "T3 Users"
    /// Distinct users with an in-flight request or an open WebSocket before a new user gets 429.
    public var maxActiveUsers: Int = 8
    /// The routing map (docs/dispatch-json.md).
    public var dispatchFile: String = "/etc/t3-serve/dispatch.json"
    /// The ttyd login map read by `workstation ttyd-login`.
    public var ttydUserMap: String = "/etc/ttyd-user-map"
    /// Seconds between checks of `dispatch_file` when no request arrives (each request checks too).
    public var reloadIntervalSeconds: Int = 1
    /// Check that each upstream connection was accepted by the routed person's account before sending to it
    /// (`/proc/net/tcp`, `/proc/net/tcp6`). Always on in production; tests of other parts may turn it off.
    public var verifyUpstreamOwner = true
    /// Where the socket tables are read (`/proc/self/net`, readable under `ProcSubset=pid`); tests point it at fixtures.
    public var procNet = "/proc/self/net"
    /// The client side of the workspaces' mutual TLS (`workspace_tls`, WorkspaceUpstream.swift); nil: an entry
    /// with a `tls_name` gets 502.
    public var workspaceTLS: WorkspaceTLSSettings?

    public init() {}

    /// The keys this section knows.
    public static let keys = [
        "identity", "listen", "metrics_listen", "front_proxy_users", "jwt", "trusted_proxies", "gate_group",
        "max_active_users", "dispatch_file", "ttyd_user_map", "reload_interval_seconds",
        "workspace_tls",
    ]

    /// True when `address` (a connected TCP peer) may send requests in `jwt` mode (`trustedProxies`, if any).
    /// IPv4-mapped IPv6 peers (`::ffff:127.0.0.1`) match their IPv4 entry.
    public func isTrusted(peer address: SocketAddress?) -> Bool {
        TrustedPeers(self).contains(address)
    }

    /// What makes this configuration one in which a local account could act as another person; empty when none.
    ///
    /// - `peer` with a TCP `listen`: a loopback port is shared by every local account, and a source address
    ///   proves nothing;
    /// - `jwt` without a `jwt` section, or with an empty issuer or audience;
    /// - a `trusted_proxies` entry in `peer` mode, `unix`, a loopback address or one of this host's own addresses
    ///   (`localAddresses`, from getifaddrs(3)): every local account can send from those.
    /// - Returns: (key, message) pairs; the key is the settings key to point at.
    public func securityProblems(
        localAddresses: Set<String> = DispatchConfig.hostAddresses()
    ) -> [(key: String, message: String)] {
        var out: [(String, String)] = []
        switch identity {
        case .peer:
            if case .tcp = listen {
                out.append(
                    (
                        "listen",
                        "dispatch.listen must be unix:/PATH with identity: peer (a loopback TCP port is shared by every local account, and a source address proves nothing); write listen: unix:/run/workstation-dispatch/dispatch.sock, or identity: jwt when the front proxy runs on another host"
                    )
                )
            }
            if frontProxyUsers.isEmpty {
                out.append(
                    (
                        "front_proxy_users",
                        "dispatch.front_proxy_users must name the front proxy's account (e.g. [www-data]) with identity: peer"
                    )
                )
            }
            if !trustedProxies.isEmpty {
                out.append(
                    (
                        "trusted_proxies",
                        "dispatch.trusted_proxies applies to identity: jwt only; with identity: peer the kernel names the peer: list its account in front_proxy_users"
                    )
                )
            }
        case .jwt:
            if jwt == nil {
                out.append(("identity", "identity: jwt needs a dispatch.jwt section (jwks_file, issuer, audience)"))
            }
        }
        if let jwt {
            if jwt.issuer.isEmpty {
                out.append(
                    ("jwt", "dispatch.jwt.issuer must be set (the provider's issuer URL, exactly as in its tokens)")
                )
            }
            if jwt.audience.isEmpty {
                out.append(("jwt", "dispatch.jwt.audience must be set (the provider's client id)"))
            }
        }
        for entry in trustedProxies {
            let ip = (try? SocketAddress(ipAddress: entry, port: 0))?.ipAddress ?? entry
            let plain = ip.hasPrefix("::ffff:") && ip.contains(".") ? String(ip.dropFirst(7)) : ip
            if entry == "unix" {
                out.append(
                    (
                        "trusted_proxies",
                        "dispatch.trusted_proxies: 'unix' is no longer an address; with identity: peer list the front proxy's account in front_proxy_users"
                    )
                )
            } else if Self.isLoopback(plain) || localAddresses.contains(plain) {
                out.append(
                    (
                        "trusted_proxies",
                        "dispatch.trusted_proxies: '\(printable(entry))' is this host's own address: every local account can connect from it; list only the remote edge's addresses"
                    )
                )
            }
        }
        return out
    }

    /// True for 127.0.0.0/8, ::1 and the unspecified addresses.
    static func isLoopback(_ ip: String) -> Bool {
        ip.hasPrefix("127.") || ip == "::1" || ip == "0.0.0.0" || ip == "::"
    }

    /// This host's interface addresses (getifaddrs(3)), as `SocketAddress.ipAddress` prints them.
    public static func hostAddresses() -> Set<String> {
        var out: Set<String> = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return out }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let sa = entry.pointee.ifa_addr {
                let family = Int32(sa.pointee.sa_family)
                if family == AF_INET {
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    if let ip = SocketAddress(a, host: "").ipAddress { out.insert(ip) }
                } else if family == AF_INET6 {
                    let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    if let ip = SocketAddress(a, host: "").ipAddress { out.insert(ip) }
                }
            }
            cursor = entry.pointee.ifa_next
        }
        return out
    }

    /// Reads the `dispatch:` section of a workstation.yaml document (other top-level keys are ignored).
    ///
    /// - Parameters:
    ///   - data: the bytes of the file.
    ///   - file: the name used in diagnostics, as the operator wrote it.
    ///   - localAddresses: this host's addresses, refused in `trusted_proxies`.
    /// - Returns: defaults when the document or the section is absent.
    /// - Throws: `ValidationFailure` with every located problem (unknown key, bad address, a deployment in which a
    ///   local account could act as another person...).
    public static func load(
        yaml data: Data,
        file: String,
        localAddresses: Set<String> = hostAddresses()
    ) throws -> DispatchConfig {
        var config = DispatchConfig()
        guard let root = try loadYAML(data, file: file) else { return config }
        let diags = DiagnosticCollector()
        guard let pairs = root.mapping("workstation.yaml", diags) else { throw ValidationFailure(diags.diagnostics) }
        guard let section = pairs.first(where: { $0.key == "dispatch" })?.value, !section.isNull else { return config }
        guard let reader = KeyedReader(section, what: "dispatch", known: keys, diags) else {
            throw ValidationFailure(diags.diagnostics)
        }
        func address(_ key: String) -> ListenAddress? {
            guard let v = reader[key], let text = v.string("dispatch.\(key)", diags) else { return nil }
            switch ListenAddress.parse(text) {
            case .success(let a): return a
            case .failure(let e):
                diags.error(v.location, "dispatch.\(key): \(e.description)")
                return nil
            }
        }
        if let v = reader["identity"], let text = v.string("dispatch.identity", diags) {
            if let mode = IdentityMode(rawValue: text) {
                config.identity = mode
            } else {
                diags.error(
                    v.location,
                    "dispatch.identity must be peer (front proxy on this host, unix socket) or jwt (front proxy on another host, signed X-authentik-jwt), got '\(printable(text))'"
                )
            }
        }
        if let a = address("listen") { config.listen = a }
        if let a = address("metrics_listen") { config.metricsListen = a }
        if let v = reader["front_proxy_users"], let list = v.stringList("dispatch.front_proxy_users", diags) {
            var out: [String] = []
            for (name, location) in list {
                if UInt32(name) != nil
                    || (!name.isEmpty && name.utf8.count <= 32
                        && name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }))
                {
                    out.append(name)
                } else {
                    diags.error(
                        location,
                        "dispatch.front_proxy_users: '\(printable(name))' is not an account name or uid"
                    )
                }
            }
            config.frontProxyUsers = out
        }
        if let v = reader["jwt"], let jr = KeyedReader(v, what: "dispatch.jwt", known: JWTSettings.keys, diags) {
            var jwt = JWTSettings()
            if let f = jr["jwks_file"], let p = f.string("dispatch.jwt.jwks_file", diags) {
                if p.hasPrefix("/") {
                    jwt.jwksFile = p
                } else {
                    diags.error(f.location, "dispatch.jwt.jwks_file must be an absolute path, got '\(printable(p))'")
                }
            }
            if let f = jr.required("issuer", diags), let t = f.string("dispatch.jwt.issuer", diags) { jwt.issuer = t }
            if let f = jr.required("audience", diags), let t = f.string("dispatch.jwt.audience", diags) {
                jwt.audience = t
            }
            if let f = jr["username_claim"], let t = f.string("dispatch.jwt.username_claim", diags), !t.isEmpty {
                jwt.usernameClaim = t
            }
            if let f = jr["groups_claim"], let t = f.string("dispatch.jwt.groups_claim", diags), !t.isEmpty {
                jwt.groupsClaim = t
            }
            config.jwt = jwt
        }
        if let v = reader["trusted_proxies"], let list = v.stringList("dispatch.trusted_proxies", diags) {
            var out: [String] = []
            for (entry, location) in list {
                if entry == "unix" || (try? SocketAddress(ipAddress: entry, port: 0)) != nil {
                    out.append(entry)
                } else {
                    diags.error(
                        location,
                        "dispatch.trusted_proxies: '\(printable(entry))' is not an IP address; list the remote edge's address exactly (no host names, no ranges)"
                    )
                }
            }
            config.trustedProxies = out
        }
        if let v = reader["gate_group"], let g = v.string("dispatch.gate_group", diags) {
            if g.isEmpty || g.contains("|") || g.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                diags.error(
                    v.location,
                    "dispatch.gate_group must be a non-empty group name without '|' or control characters"
                )
            } else {
                config.gateGroup = g
            }
        }
        if let v = reader["max_active_users"], let n = v.integer("dispatch.max_active_users", diags, range: 1...10_000)
        {
            config.maxActiveUsers = n
        }
        for (key, keyPath) in [
            ("dispatch_file", \DispatchConfig.dispatchFile), ("ttyd_user_map", \DispatchConfig.ttydUserMap),
        ] {
            if let v = reader[key], let p = v.string("dispatch.\(key)", diags) {
                if p.hasPrefix("/") {
                    config[keyPath: keyPath] = p
                } else {
                    diags.error(v.location, "dispatch.\(key) must be an absolute path, got '\(printable(p))'")
                }
            }
        }
        if let v = reader["reload_interval_seconds"],
            let n = v.integer("dispatch.reload_interval_seconds", diags, range: 1...3600)
        {
            config.reloadIntervalSeconds = n
        }
        if let v = reader["workspace_tls"] { config.workspaceTLS = WorkspaceTLSSettings.parse(v, diags) }
        if diags.isEmpty {
            for problem in config.securityProblems(localAddresses: localAddresses) {
                let at = reader[problem.key]?.location ?? (problem.key == "listen" ? reader.location : reader.location)
                diags.error(at, problem.message)
            }
        }
        if !diags.isEmpty { throw ValidationFailure(diags.diagnostics) }
        return config
    }

    /// Reads the `dispatch:` section from a settings file; a missing file yields the defaults.
    /// - Throws: `ValidationFailure` for a malformed or unsafe section, or the read error for an unreadable file.
    public static func load(path: String) throws -> DispatchConfig {
        guard FileManager.default.fileExists(atPath: path) else { return DispatchConfig() }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try load(yaml: data, file: path)
    }
}
