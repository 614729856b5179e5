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
        let names = headers[usernameHeader]
        guard names.count == 1, let user = names.first else {
            return .refuse(
                status: 403,
                reason: names.isEmpty ? "no \(usernameHeader) header" : "\(usernameHeader) repeated"
            )
        }
        let groups = headers[groupsHeader]
        if let c = checked, c.user == user, groups.count == 1, c.groups == groups[0] {
            // Same values as a request already checked on this connection.
        } else {
            checked = nil
            if let problem = identityProblem(user) {
                return .refuse(status: 403, reason: "\(usernameHeader) \(problem)")
            }
            guard groups.count == 1, let groupList = groups.first else {
                return .refuse(
                    status: 403,
                    reason: groups.isEmpty ? "no \(groupsHeader) header" : "\(groupsHeader) repeated"
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
        let names = headers[usernameHeader]
        if !names.isEmpty, names != [token.user] {
            return .refuse(status: 403, reason: "\(usernameHeader) disagrees with the token")
        }
        let groups = headers[groupsHeader]
        if !groups.isEmpty, groups != [token.groups.joined(separator: "|")] {
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
    /// of `headers` that are neither `X-authentik-*` nor hop-by-hop nor named by `Connection`, then the checked
    /// `X-authentik-username`, then for a WebSocket upgrade `Connection: Upgrade` and `Upgrade`.
    private static func forEachUpstreamField(
        _ headers: HTTPHeaders,
        user: String,
        upgrade: Bool,
        _ body: (String, String) -> Void
    ) {
        // Fields named by `Connection`; usually none. Framing fields are never dropped.
        var named: [Substring] = []
        for (name, value) in headers where ascii(name, equals: "connection") {
            for token in value.split(separator: ",") {
                let t = trimmedOWS(token)
                if !t.isEmpty, !ascii(t, equals: "content-length"), !ascii(t, equals: "transfer-encoding") {
                    named.append(t)
                }
            }
        }
        for (name, value) in headers {
            if isHopByHop(name) || ascii(name, hasPrefix: "x-authentik-") { continue }
            if !named.isEmpty && named.contains(where: { asciiEqual(name.utf8, $0.utf8) }) { continue }
            body(name, value)
        }
        body(usernameHeader, user)
        if upgrade, let proto = headers.first(name: "upgrade") {
            body("Connection", "Upgrade")
            body("Upgrade", proto)
        }
    }

    /// True for the fields that are hop-by-hop whether or not `Connection` names them (RFC 9110 section 7.6.1):
    /// `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Upgrade`, `Proxy-Authenticate`, `Proxy-Authorization`.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: ascii(name, equals: "te")
        case 7: ascii(name, equals: "upgrade")
        case 10: ascii(name, equals: "connection") || ascii(name, equals: "keep-alive")
        case 16: ascii(name, equals: "proxy-connection")
        case 18: ascii(name, equals: "proxy-authenticate")
        case 19: ascii(name, equals: "proxy-authorization")
        default: false
        }
    }

    /// True when the request asks to switch to WebSocket (RFC 6455 section 4.1: `Upgrade: websocket` and a
    /// `Connection` field containing the token `upgrade`, both case-insensitive).
    public static func isWebSocketUpgrade(_ headers: HTTPHeaders) -> Bool {
        var upgrade = false
        var connection = false
        for (name, value) in headers {
            if !upgrade, ascii(name, equals: "upgrade") {
                upgrade = value.split(separator: ",").contains { ascii(trimmedOWS($0), equals: "websocket") }
            } else if !connection, ascii(name, equals: "connection") {
                connection = value.split(separator: ",").contains { ascii(trimmedOWS($0), equals: "upgrade") }
            }
        }
        return upgrade && connection
    }

    // MARK: ASCII case-insensitive comparison (header names are ASCII, RFC 9110 section 5.1)

    @inline(__always) private static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    /// `a` equals `b` ignoring ASCII case.
    static func asciiEqual<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        a.count == b.count && a.elementsEqual(b) { lower($0) == lower($1) }
    }

    /// `s` equals `lowercase` (already lowercase) ignoring ASCII case.
    static func ascii<S: StringProtocol>(_ s: S, equals lowercase: StaticString) -> Bool {
        let b = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return s.utf8.count == b.count && s.utf8.elementsEqual(b) { lower($0) == $1 }
    }

    /// `s` starts with `lowercase` (already lowercase) ignoring ASCII case.
    static func ascii(_ s: String, hasPrefix lowercase: StaticString) -> Bool {
        let b = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return s.utf8.count >= b.count && s.utf8.prefix(b.count).elementsEqual(b) { lower($0) == $1 }
    }

    /// `s` without leading and trailing optional whitespace (space, horizontal tab; RFC 9110 section 5.6.3).
    static func trimmedOWS(_ s: Substring) -> Substring {
        let u = s.utf8
        var lo = u.startIndex
        var hi = u.endIndex
        while lo < hi, u[lo] == 0x20 || u[lo] == 0x09 { lo = u.index(after: lo) }
        while lo < hi {
            let p = u.index(before: hi)
            guard u[p] == 0x20 || u[p] == 0x09 else { break }
            hi = p
        }
        return Substring(u[lo..<hi])
    }
}
