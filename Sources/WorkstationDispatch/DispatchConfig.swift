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
            guard path.hasPrefix("/") else { return .failure(.init(text: text, reason: "a unix socket path must be absolute, e.g. unix:/run/workstation-dispatch/dispatch.sock")) }
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
            return .failure(.init(text: text, reason: "'\(host)' is not an IP address; name the address, not a host name"))
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

/// `DispatchConfig.trustedProxies` parsed once, for the check on every new connection.
struct TrustedPeers: Sendable {
    /// Trusted IPs as `SocketAddress.ipAddress` prints them.
    private let ips: Set<String>
    private let unix: Bool

    init(_ config: DispatchConfig) {
        ips = Set(config.trustedProxies.map { entry in
            (try? SocketAddress(ipAddress: entry, port: 0))?.ipAddress ?? entry
        })
        unix = config.trustedProxies.contains("unix")
    }

    /// True when `address` is trusted; `::ffff:a.b.c.d` matches `a.b.c.d`.
    func contains(_ address: SocketAddress?) -> Bool {
        guard let address else { return false }
        switch address {
        case .unixDomainSocket: return unix
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

/// Settings of `workstation dispatch`, the `dispatch:` section of `workstation.yaml`.
///
/// ```yaml
/// dispatch:
///   listen: 127.0.0.1:3773              # or unix:/run/workstation-dispatch/dispatch.sock
///   metrics_listen: 127.0.0.1:9464      # /healthz and /metrics
///   trusted_proxies: [127.0.0.1, "::1"] # peers whose X-authentik-* headers are believed; "unix" for the socket
///   gate_group: T3 Users                # must appear in X-authentik-groups
///   max_active_users: 8                 # distinct users with live connections before new users get 429
///   dispatch_file: /etc/t3-serve/dispatch.json
///   ttyd_user_map: /etc/ttyd-user-map
///   reload_interval_seconds: 1          # how often dispatch.json is checked even without requests
/// ```
/// Every key has a default; the section itself is optional.
public struct DispatchConfig: Sendable, Hashable {
    public var listen: ListenAddress = .tcp(host: "127.0.0.1", port: 3773)
    public var metricsListen: ListenAddress = .tcp(host: "127.0.0.1", port: 9464)
    /// Peer addresses (IP text as `SocketAddress` prints it, or `unix` for unix socket peers) whose identity headers
    /// are trusted. Any other peer gets 403.
    public var trustedProxies: [String] = ["127.0.0.1", "::1", "unix"]
    /// The group (Authentik group name) a person must hold; `X-authentik-groups` is split on `|`, matched exactly.
    public var gateGroup: String = "T3 Users"
    /// Distinct users with an in-flight request or an open WebSocket before a new user gets 429.
    public var maxActiveUsers: Int = 8
    /// The routing map (docs/dispatch-json.md).
    public var dispatchFile: String = "/etc/t3-serve/dispatch.json"
    /// The ttyd login map read by `workstation ttyd-login`.
    public var ttydUserMap: String = "/etc/ttyd-user-map"
    /// Seconds between checks of `dispatch_file` when no request arrives (each request checks too).
    public var reloadIntervalSeconds: Int = 1

    public init() {}

    /// The keys this section knows.
    public static let keys = [
        "listen", "metrics_listen", "trusted_proxies", "gate_group", "max_active_users", "dispatch_file",
        "ttyd_user_map", "reload_interval_seconds",
    ]

    /// True when `address` (a connected peer) is one of `trustedProxies`. IPv4-mapped IPv6 peers
    /// (`::ffff:127.0.0.1`) match their IPv4 entry.
    public func isTrusted(peer address: SocketAddress?) -> Bool {
        TrustedPeers(self).contains(address)
    }

    /// Reads the `dispatch:` section of a workstation.yaml document (other top-level keys are ignored).
    ///
    /// - Parameters:
    ///   - data: the bytes of the file.
    ///   - file: the name used in diagnostics, as the operator wrote it.
    /// - Returns: defaults when the document or the section is absent.
    /// - Throws: `ValidationFailure` with every located problem (unknown key, bad address, bad number...).
    public static func load(yaml data: Data, file: String) throws -> DispatchConfig {
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
        if let a = address("listen") { config.listen = a }
        if let a = address("metrics_listen") { config.metricsListen = a }
        if let v = reader["trusted_proxies"], let list = v.stringList("dispatch.trusted_proxies", diags) {
            var out: [String] = []
            for (entry, location) in list {
                if entry == "unix" || (try? SocketAddress(ipAddress: entry, port: 0)) != nil {
                    out.append(entry)
                } else {
                    diags.error(location, "dispatch.trusted_proxies: '\(printable(entry))' is not an IP address or 'unix'; list the proxy's address exactly (no host names, no ranges)")
                }
            }
            config.trustedProxies = out
        }
        if let v = reader["gate_group"], let g = v.string("dispatch.gate_group", diags) {
            if g.isEmpty || g.contains("|") || g.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                diags.error(v.location, "dispatch.gate_group must be a non-empty group name without '|' or control characters")
            } else {
                config.gateGroup = g
            }
        }
        if let v = reader["max_active_users"], let n = v.integer("dispatch.max_active_users", diags, range: 1...10_000) {
            config.maxActiveUsers = n
        }
        for (key, keyPath) in [("dispatch_file", \DispatchConfig.dispatchFile), ("ttyd_user_map", \DispatchConfig.ttydUserMap)] {
            if let v = reader[key], let p = v.string("dispatch.\(key)", diags) {
                if p.hasPrefix("/") { config[keyPath: keyPath] = p } else { diags.error(v.location, "dispatch.\(key) must be an absolute path, got '\(printable(p))'") }
            }
        }
        if let v = reader["reload_interval_seconds"], let n = v.integer("dispatch.reload_interval_seconds", diags, range: 1...3600) {
            config.reloadIntervalSeconds = n
        }
        if !diags.isEmpty { throw ValidationFailure(diags.diagnostics) }
        return config
    }

    /// Reads the `dispatch:` section from a settings file; a missing file yields the defaults.
    /// - Throws: `ValidationFailure` for a malformed section, or the read error for an unreadable file.
    public static func load(path: String) throws -> DispatchConfig {
        guard FileManager.default.fileExists(atPath: path) else { return DispatchConfig() }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try load(yaml: data, file: path)
    }
}
