import Foundation

/// Where the dispatcher reaches a kubernetes-placed person: their workspace Service (docs/scale-out.md).
public struct WorkspaceRoute: Sendable, Hashable, Codable {
    /// The Service's host name (`workspaces.service_host`), e.g. `workspace-alice.workstation.svc.cluster.local`.
    public var host: String
    /// The Service port.
    public var port: Int
    /// The name the workspace's certificate must carry (`workspace-alice.workstation.svc`); nil: plain HTTP
    /// (`workspaces.tls.mode: none`).
    public var tlsName: String?
    public init(host: String, port: Int, tlsName: String?) {
        self.host = host
        self.port = port
        self.tlsName = tlsName
    }
}

/// A person as the data plane sees them: routed by authentik_user to os_user and ports, or to their workspace.
public struct RoutedIdentity: Sendable, Hashable, Codable {
    public var authentikUser: String
    public var osUser: String
    /// Unit template -> port; the primary unit's port is the one the dispatcher routes to (host placement).
    public var ports: [String: Int]
    /// True for admins: adopted, never provisioned.
    public var adopted: Bool
    /// Set for a kubernetes-placed person: the dispatcher routes to this Service instead of a port on this host,
    /// and the ttyd map leaves them out (they have no account here).
    public var workspace: WorkspaceRoute?
    public init(
        authentikUser: String,
        osUser: String,
        ports: [String: Int],
        adopted: Bool,
        workspace: WorkspaceRoute? = nil
    ) {
        self.authentikUser = authentikUser
        self.osUser = osUser
        self.ports = ports
        self.adopted = adopted
        self.workspace = workspace
    }
}

/// `/etc/t3-serve/dispatch.json`, version 1, or version 2 when someone is placed on Kubernetes. Format documented
/// in docs/dispatch-json.md:
///
/// ```json
/// {"version": 1, "users": {"alice": {"os_user": "alice", "port": 3774, "ports": {"t3-serve@": 3774}}}}
/// ```
/// Keys of `users` are authentik_user values, matched exactly (case-sensitive). Version 2 adds, for a
/// kubernetes-placed person, `host` (their workspace Service) and `tls_name` (the name its certificate must carry);
/// a reader of version 1 refuses version 2 and keeps its last map, so an older dispatcher never routes such a
/// person to a port on its own host.
public struct DispatchMap: Sendable, Hashable, Codable {
    public struct User: Sendable, Hashable, Codable {
        public var osUser: String
        /// Port of the primary unit (the t3 instance) on 127.0.0.1, or of the workspace Service at `host`.
        public var port: Int
        /// Every per-user unit's port, keyed by template (empty for a workspace).
        public var ports: [String: Int]
        /// The workspace Service's host name; nil: the person's instance on 127.0.0.1 of this host.
        public var host: String?
        /// The name the workspace's TLS certificate must carry; nil: plain HTTP to `host`.
        public var tlsName: String?
        enum CodingKeys: String, CodingKey {
            case osUser = "os_user"
            case port, ports, host
            case tlsName = "tls_name"
        }
        public init(osUser: String, port: Int, ports: [String: Int], host: String? = nil, tlsName: String? = nil) {
            self.osUser = osUser
            self.port = port
            self.ports = ports
            self.host = host
            self.tlsName = tlsName
        }
    }
    public var version: Int
    public var users: [String: User]

    public init(version: Int = 1, users: [String: User]) {
        self.version = version
        self.users = users
    }

    /// Canonical bytes: sorted keys, two-space indent, trailing newline; byte-identical for equal maps.
    ///
    /// Written directly, in exactly the form `JSONEncoder` gives with `.prettyPrinted, .sortedKeys,
    /// .withoutEscapingSlashes` (`"key" : value`, an empty object as `{` blank line `}`), which the tests check
    /// against `JSONEncoder` itself: this runs on every plan, for every person, and the generic encoder was a
    /// tenth of a no-op plan of a thousand people.
    public func encoded() -> Data {
        var out = ""
        out.reserveCapacity(64 + users.count * 110)
        out += "{\n  \"users\" : {"
        if users.isEmpty {
            out += "\n\n  }"
        } else {
            var first = true
            for name in users.keys.sorted() {
                let u = users[name]!
                out += first ? "\n    " : ",\n    "
                first = false
                Self.appendQuoted(name, to: &out)
                out += " : {\n      "
                if let host = u.host {
                    out += "\"host\" : "
                    Self.appendQuoted(host, to: &out)
                    out += ",\n      "
                }
                out += "\"os_user\" : "
                Self.appendQuoted(u.osUser, to: &out)
                out += ",\n      \"port\" : \(u.port),\n      \"ports\" : {"
                if u.ports.isEmpty {
                    out += "\n\n      }"
                } else {
                    var firstPort = true
                    for template in u.ports.keys.sorted() {
                        out += firstPort ? "\n        " : ",\n        "
                        firstPort = false
                        Self.appendQuoted(template, to: &out)
                        out += " : \(u.ports[template]!)"
                    }
                    out += "\n      }"
                }
                if let tlsName = u.tlsName {
                    out += ",\n      \"tls_name\" : "
                    Self.appendQuoted(tlsName, to: &out)
                }
                out += "\n    }"
            }
            out += "\n  }"
        }
        out += ",\n  \"version\" : \(version)\n}\n"
        return Data(out.utf8)
    }

    /// `s` as a JSON string the way `JSONEncoder` writes it (RFC 8259 section 7; `/` not escaped).
    static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// Parses a dispatch.json written by workstation.
    /// - Throws: `DecodingError` when the file is not version 1 or 2 of this format, or a version 1 file names a
    ///   `host` or `tls_name` (only version 2 routes to a workspace).
    public static func decode(_ data: Data) throws -> DispatchMap {
        let m = try JSONDecoder().decode(DispatchMap.self, from: data)
        guard m.version == 1 || m.version == 2 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "unsupported dispatch.json version \(m.version)")
            )
        }
        if m.version == 1, let name = m.users.first(where: { $0.value.host != nil || $0.value.tlsName != nil })?.key {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "version 1 entry '\(name)' names a workspace host")
            )
        }
        return m
    }

    /// The version a map with `users` is written as: 2 when anyone is routed to a workspace, else 1.
    public static func version(for users: [String: User]) -> Int {
        users.values.contains { $0.host != nil } ? 2 : 1
    }
}

/// Ports found in an existing dispatch.json, read leniently so a hand-made file's ports are adopted too:
/// `{"users": {name: {"port": N, "os_user": u}}}`, `{name: {"port": N}}` or `{name: N}`.
/// Returns name -> port for both the authentik_user key and the os_user value.
public func adoptablePorts(fromDispatch data: Data) -> [String: Int] {
    // The file workstation writes decodes typed; only a hand-made one needs the untyped walk below.
    if let map = try? DispatchMap.decode(data) { return adoptablePorts(from: map) }
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
    let users = (obj["users"] as? [String: Any]) ?? obj
    var out: [String: Int] = [:]
    for (name, v) in users {
        if let n = v as? Int {
            out[name] = n
        } else if let d = v as? [String: Any], let n = d["port"] as? Int {
            out[name] = n
            if let os = d["os_user"] as? String { out[os] = n }
        }
    }
    return out
}

/// `adoptablePorts(fromDispatch:)` of a map already decoded: name -> port for each authentik_user key and os_user.
public func adoptablePorts(from map: DispatchMap) -> [String: Int] {
    var out: [String: Int] = [:]
    out.reserveCapacity(map.users.count * 2)
    // A workspace's port is its Service's, in the cluster: no port on this host.
    for (name, u) in map.users where u.host == nil {
        out[name] = u.port
        out[u.osUser] = u.port
    }
    return out
}

/// Renders both derived files from the identities (admins included).
public enum DerivedFileRenderer {
    public static let header = "# generated by workstation from the roster; do not edit, changes are overwritten\n"

    /// `/etc/ttyd-user-map`: `authentik_user=os_user` per line, sorted, after a comment header. Kubernetes-placed
    /// people are left out: they have no account on this host to log into.
    public static func ttydUserMap(_ ids: [RoutedIdentity]) -> Data {
        var s = header
        for id in ids.sorted(by: { $0.authentikUser < $1.authentikUser }) where id.workspace == nil {
            s += "\(id.authentikUser)=\(id.osUser)\n"
        }
        return Data(s.utf8)
    }

    /// Parses a ttyd map: authentik_user -> os_user; comments and blank lines skipped, malformed lines ignored.
    public static func parseTtydUserMap(_ data: Data) -> [String: String] {
        var out: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard !t.isEmpty, !t.hasPrefix("#"), let eq = t.firstIndex(of: "=") else { continue }
            out[String(t[..<eq])] = String(t[t.index(after: eq)...])
        }
        return out
    }

    /// dispatch.json: each person's primary unit port on this host, or their workspace Service (version 2).
    public static func dispatch(_ ids: [RoutedIdentity], primary: String) -> Data {
        var users: [String: DispatchMap.User] = [:]
        for id in ids {
            if let w = id.workspace {
                users[id.authentikUser] = DispatchMap.User(
                    osUser: id.osUser,
                    port: w.port,
                    ports: [:],
                    host: w.host,
                    tlsName: w.tlsName
                )
                continue
            }
            guard let port = id.ports[primary] else { continue }
            users[id.authentikUser] = DispatchMap.User(osUser: id.osUser, port: port, ports: id.ports)
        }
        return DispatchMap(version: DispatchMap.version(for: users), users: users).encoded()
    }
}
