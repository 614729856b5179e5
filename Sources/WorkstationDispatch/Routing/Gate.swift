import Foundation
import NIOCore
import NIOHTTP1
import WorkstationCore

/// What the dispatcher does with one request, decided from its peer and headers alone.
public enum GateDecision: Sendable, Equatable {
    /// Forward to `127.0.0.1:port` as `user`; the listener there must belong to `osUser`. With `workspace`, to
    /// that Service's `port` instead (a kubernetes-placed person), over TLS when it has a `tlsName`.
    case route(user: String, osUser: String, port: Int, workspace: WorkspaceTarget? = nil)
    /// Answer `status` (403) without contacting any upstream; `reason` is for the log, never the client.
    case refuse(status: Int, reason: String)
}

/// Identity header values that passed `Gate.decide`'s header checks on one connection.
struct CheckedIdentity: Sendable, Equatable {
    var user: String
    var groups: String
}

/// The identity fields of a request (`X-authentik-username`, `-groups`, `-jwt`), found in one pass over its
/// fields with names compared ASCII case-insensitively (RFC 9110 section 5.1): how many of each, and the first value.
struct IdentityFields {
    var userCount = 0
    var user: String?
    var groupsCount = 0
    var groups: String?
    var tokenCount = 0
    var token: String?

    /// The fields of a head the fast path scanned (`RequestHeadScanner`), from its bytes. The token is counted but
    /// not copied (`token` stays nil): the fast path looks it up from the bytes (`TokenVerifier.cached(bytes:memo:)`).
    init(_ head: ScannedHead, in bytes: UnsafeRawBufferPointer) {
        func value(_ f: ScannedField) -> String? {
            f.count == 0 ? nil : String(decoding: bytes[field: f.value], as: UTF8.self)
        }
        userCount = head.user.count
        user = value(head.user)
        groupsCount = head.groups.count
        groups = value(head.groups)
        tokenCount = head.token.count
    }

    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            switch HTTPField.bytes(of: name, Self.kind) {
            case 1:
                userCount += 1
                if user == nil { user = value }
            case 2:
                groupsCount += 1
                if groups == nil { groups = value }
            case 3:
                tokenCount += 1
                if token == nil { token = value }
            default: break
            }
        }
    }

    /// 1, 2, 3 for a field named `X-authentik-username`, `-groups`, `-jwt`; 0 otherwise.
    private static func kind(_ n: UnsafeRawBufferPointer) -> Int {
        guard n.count >= 15, HTTPField.hasPrefix(n, lowercase: "x-authentik-") else { return 0 }
        let rest = n[field: 12..<n.count]
        if HTTPField.equals(rest, lowercase: "username") { return 1 }
        if HTTPField.equals(rest, lowercase: "groups") { return 2 }
        if HTTPField.equals(rest, lowercase: "jwt") { return 3 }
        return 0
    }
}

/// The identity check in front of every request (pure; no I/O).
///
/// Headers follow Authentik's forward-auth outpost: `X-authentik-username` (one value) and `X-authentik-groups`
/// (group names joined by `|`). Header names are case-insensitive (RFC 9110 section 5.1); values are matched exactly
/// and case-sensitively.
public enum Gate {
    public static let usernameHeader = "X-authentik-username"
    public static let groupsHeader = "X-authentik-groups"
    /// The signed token Authentik's outpost passes (a JWT, RFC 7519).
    public static let jwtHeader = "X-authentik-jwt"

    /// Decides whether to route a request.
    ///
    /// Refuses (403) when: the peer is not a trusted proxy; `X-authentik-username` is missing, repeated, empty or
    /// malformed (`identityProblem`); `X-authentik-groups` is missing, repeated or lacks `gateGroup`; the user is
    /// not in the routing map. There is never a default route.
    /// - Parameters:
    ///   - lookup: the routing map lookup, exact key match.
    public static func decide(
        headers: HTTPHeaders,
        peerTrusted: Bool,
        gateGroup: String,
        lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        var checked: CheckedIdentity?
        return decide(
            headers: headers,
            peerTrusted: peerTrusted,
            gateGroup: gateGroup,
            checked: &checked,
            lookup: lookup
        )
    }

    /// `decide`, remembering in `checked` the identity header values that passed the header checks, so that the
    /// next request on the same connection with the same two values skips re-validating them. The routing map is
    /// consulted on every request (a removed user is refused on the next one).
    static func decide(
        headers: HTTPHeaders,
        peerTrusted: Bool,
        gateGroup: String,
        checked: inout CheckedIdentity?,
        lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        guard peerTrusted else { return .refuse(status: 403, reason: "peer is not a trusted proxy") }
        return decide(fields: IdentityFields(headers), gateGroup: gateGroup, checked: &checked, lookup: lookup)
    }

    /// `decide` for a trusted peer, on identity fields already found (NIO's decoded headers, or the fast path's
    /// scanned head).
    static func decide(
        fields: IdentityFields,
        gateGroup: String,
        checked: inout CheckedIdentity?,
        lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        guard fields.userCount == 1, let user = fields.user else {
            return .refuse(
                status: 403,
                reason: fields.userCount == 0 ? "no \(usernameHeader) header" : "\(usernameHeader) repeated"
            )
        }
        if let c = checked, c.user == user, fields.groupsCount == 1, c.groups == fields.groups {
            // Same values as a request already checked on this connection.
        } else {
            checked = nil
            if let problem = identityProblem(user) {
                return .refuse(status: 403, reason: "\(usernameHeader) \(problem)")
            }
            guard fields.groupsCount == 1, let groupList = fields.groups else {
                return .refuse(
                    status: 403,
                    reason: fields.groupsCount == 0 ? "no \(groupsHeader) header" : "\(groupsHeader) repeated"
                )
            }
            guard groupList.split(separator: "|", omittingEmptySubsequences: true).contains(where: { $0 == gateGroup })
            else {
                return .refuse(status: 403, reason: "not in gate group")
            }
            checked = CheckedIdentity(user: user, groups: groupList)
        }
        guard let entry = lookup(user) else { return .refuse(status: 403, reason: "not in dispatch map") }
        return .route(user: user, osUser: entry.osUser, port: entry.port, workspace: entry.workspaceTarget)
    }

    /// Decides whether to route a request whose `X-authentik-jwt` was verified (`TokenVerifier`): the username and
    /// groups come from the token's claims. An `X-authentik-username` or `X-authentik-groups` header, when present,
    /// must say exactly what the token says (one value; groups joined by `|` in the token's order), else 403: a
    /// header that disagrees with the token is a forgery or a misconfigured proxy.
    static func decide(
        headers: HTTPHeaders,
        token: TokenIdentity,
        gateGroup: String,
        lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        decide(fields: IdentityFields(headers), token: token, gateGroup: gateGroup, lookup: lookup)
    }

    /// `decide` for a verified token, on identity fields already found.
    static func decide(
        fields: IdentityFields,
        token: TokenIdentity,
        gateGroup: String,
        lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        if fields.userCount > 0, fields.userCount > 1 || fields.user != token.user {
            return .refuse(status: 403, reason: "\(usernameHeader) disagrees with the token")
        }
        if fields.groupsCount > 0, fields.groupsCount > 1 || fields.groups != token.groupsField {
            return .refuse(status: 403, reason: "\(groupsHeader) disagrees with the token")
        }
        if let problem = identityProblem(token.user) {
            return .refuse(status: 403, reason: "token username \(problem)")
        }
        guard token.groups.contains(gateGroup) else { return .refuse(status: 403, reason: "not in gate group") }
        guard let entry = lookup(token.user) else { return .refuse(status: 403, reason: "not in dispatch map") }
        return .route(user: token.user, osUser: entry.osUser, port: entry.port, workspace: entry.workspaceTarget)
    }

    /// The headers sent to the upstream: every `X-authentik-*` field removed, then one `X-authentik-username`
    /// carrying the checked name; hop-by-hop fields (and the fields `Connection` names) removed, except that a
    /// WebSocket upgrade keeps `Connection: Upgrade` and `Upgrade` (RFC 6455 section 4.1).
    /// Framing fields (`Content-Length`, `Transfer-Encoding`) are kept: the body is re-framed the same way.
    public static func upstreamHeaders(_ headers: HTTPHeaders, user: String, upgrade: Bool) -> HTTPHeaders {
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 3)
        forEachUpstreamField(headers, user: user, upgrade: upgrade) { out.add(name: $0, value: $1) }
        return out
    }

    /// Writes the request head sent upstream (`METHOD target HTTP/1.1`, then the fields `upstreamHeaders` gives)
    /// straight into `out`, without building the fields twice.
    static func writeUpstreamHead(_ head: HTTPRequestHead, user: String, upgrade: Bool, into out: inout ByteBuffer) {
        out.writeString(head.method.rawValue)
        out.writeStaticString(" ")
        out.writeString(head.uri)
        out.writeStaticString(" HTTP/1.1\r\n")
        forEachUpstreamField(head.headers, user: user, upgrade: upgrade) { name, value in
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
    }

    /// The fields sent upstream, in order (one pass, comparing names as ASCII case-insensitively in place): those
    /// of `headers` that are neither `X-authentik-*` nor hop-by-hop (`HTTPField.isHopByHop`) nor named by
    /// `Connection`, then the checked `X-authentik-username`, then for a WebSocket upgrade `Connection: Upgrade` and
    /// `Upgrade`.
    private static func forEachUpstreamField(
        _ headers: HTTPHeaders,
        user: String,
        upgrade: Bool,
        _ body: (String, String) -> Void
    ) {
        // Fields named by `Connection`; usually none. Framing fields are never dropped.
        var named: [String] = []
        for (name, value) in headers where HTTPField.bytes(of: name, { HTTPField.equals($0, lowercase: "connection") })
        {
            HTTPField.bytes(of: value) { v in
                HTTPField.forEachToken(v) { token in
                    if !HTTPField.isFraming(token) { named.append(String(decoding: token, as: UTF8.self)) }
                }
            }
        }
        for (name, value) in headers {
            let dropped = HTTPField.bytes(of: name) { n in
                if isStripped(n) { return true }
                return !named.isEmpty
                    && named.contains { t in HTTPField.bytes(of: t) { HTTPField.equalIgnoringCase(n, $0) } }
            }
            if !dropped { body(name, value) }
        }
        body(usernameHeader, user)
        if upgrade, let proto = headers.first(name: "upgrade") {
            body("Connection", "Upgrade")
            body("Upgrade", proto)
        }
    }

    /// True for a request field that never reaches an upstream as received, whatever `Connection` names: every
    /// `X-authentik-*` field (the checked username is added instead) and the hop-by-hop fields
    /// (`HTTPField.isHopByHop`). Both request paths strip these (`forEachUpstreamField`,
    /// `RequestHeadScanner.writeUpstreamHead`).
    static func isStripped(_ name: UnsafeRawBufferPointer) -> Bool {
        HTTPField.isHopByHop(name) || HTTPField.hasPrefix(name, lowercase: "x-authentik-")
    }

    /// True when the request asks to switch to WebSocket (RFC 6455 section 4.1: `Upgrade: websocket` and a
    /// `Connection` field containing the token `upgrade`, both case-insensitive).
    public static func isWebSocketUpgrade(_ headers: HTTPHeaders) -> Bool {
        var upgrade = false
        var connection = false
        for (name, value) in headers {
            let kind = HTTPField.bytes(of: name) { n in
                HTTPField.equals(n, lowercase: "upgrade") ? 1 : HTTPField.equals(n, lowercase: "connection") ? 2 : 0
            }
            if !upgrade, kind == 1 {
                upgrade = HTTPField.bytes(of: value) { HTTPField.listContains($0, lowercase: "websocket") }
            } else if !connection, kind == 2 {
                connection = HTTPField.bytes(of: value) { HTTPField.listContains($0, lowercase: "upgrade") }
            }
        }
        return upgrade && connection
    }
}
