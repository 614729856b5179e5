import Foundation
import NIOHTTP1
import WorkstationCore

/// What the dispatcher does with one request, decided from its peer and headers alone.
public enum GateDecision: Sendable, Equatable {
    /// Forward to `127.0.0.1:port` as `user`.
    case route(user: String, port: Int)
    /// Answer `status` (403) without contacting any upstream; `reason` is for the log, never the client.
    case refuse(status: Int, reason: String)
}

/// The identity check in front of every request (pure; no I/O).
///
/// Headers follow Authentik's forward-auth outpost: `X-authentik-username` (one value) and `X-authentik-groups`
/// (group names joined by `|`). Header names are case-insensitive (RFC 9110 section 5.1); values are matched exactly
/// and case-sensitively.
public enum Gate {
    public static let usernameHeader = "X-authentik-username"
    public static let groupsHeader = "X-authentik-groups"

    /// Decides whether to route a request.
    ///
    /// Refuses (403) when: the peer is not a trusted proxy; `X-authentik-username` is missing, repeated, empty or
    /// malformed (`identityProblem`); `X-authentik-groups` is missing, repeated or lacks `gateGroup`; the user is
    /// not in the routing map. There is never a default route.
    /// - Parameters:
    ///   - lookup: the routing map lookup, exact key match.
    public static func decide(
        headers: HTTPHeaders, peerTrusted: Bool, gateGroup: String, lookup: (String) -> DispatchMap.User?
    ) -> GateDecision {
        guard peerTrusted else { return .refuse(status: 403, reason: "peer is not a trusted proxy") }
        let names = headers[usernameHeader]
        guard names.count == 1, let user = names.first else {
            return .refuse(status: 403, reason: names.isEmpty ? "no \(usernameHeader) header" : "\(usernameHeader) repeated")
        }
        if let problem = identityProblem(user) {
            return .refuse(status: 403, reason: "\(usernameHeader) \(problem)")
        }
        let groups = headers[groupsHeader]
        guard groups.count == 1, let groupList = groups.first else {
            return .refuse(status: 403, reason: groups.isEmpty ? "no \(groupsHeader) header" : "\(groupsHeader) repeated")
        }
        guard groupList.split(separator: "|", omittingEmptySubsequences: true).contains(where: { $0 == gateGroup }) else {
            return .refuse(status: 403, reason: "not in gate group")
        }
        guard let entry = lookup(user) else { return .refuse(status: 403, reason: "not in dispatch map") }
        return .route(user: user, port: entry.port)
    }

    /// Header fields that are hop-by-hop whether or not `Connection` names them (RFC 9110 section 7.6.1).
    static let hopByHop: Set<String> = ["connection", "proxy-connection", "keep-alive", "te", "upgrade", "proxy-authenticate", "proxy-authorization"]

    /// The headers sent to the upstream: every `X-authentik-*` field removed, then one `X-authentik-username`
    /// carrying the checked name; hop-by-hop fields (and the fields `Connection` names) removed, except that a
    /// WebSocket upgrade keeps `Connection: Upgrade` and `Upgrade` (RFC 6455 section 4.1).
    /// Framing fields (`Content-Length`, `Transfer-Encoding`) are kept: the body is re-framed the same way.
    public static func upstreamHeaders(_ headers: HTTPHeaders, user: String, upgrade: Bool) -> HTTPHeaders {
        var out = stripHopByHop(headers)
        out.remove(where: { $0.lowercased().hasPrefix("x-authentik-") })
        out.add(name: usernameHeader, value: user)
        if upgrade, let proto = headers["upgrade"].first {
            out.add(name: "Connection", value: "Upgrade")
            out.add(name: "Upgrade", value: proto)
        }
        return out
    }

    /// Removes hop-by-hop fields and the fields listed in `Connection` (RFC 9110 section 7.6.1).
    static func stripHopByHop(_ headers: HTTPHeaders) -> HTTPHeaders {
        var drop = hopByHop
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                drop.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        drop.remove("content-length")
        drop.remove("transfer-encoding")
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 1)
        for (name, value) in headers where !drop.contains(name.lowercased()) {
            out.add(name: name, value: value)
        }
        return out
    }

    /// True when the request asks to switch to WebSocket (RFC 6455 section 4.1: `Upgrade: websocket` and a
    /// `Connection` field containing the token `upgrade`, both case-insensitive).
    public static func isWebSocketUpgrade(_ headers: HTTPHeaders) -> Bool {
        headers["upgrade"].contains { $0.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "websocket" } }
            && headers["connection"].contains { $0.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "upgrade" } }
    }
}

extension HTTPHeaders {
    mutating func remove(where predicate: (String) -> Bool) {
        let names = Set(self.map(\.name).filter(predicate))
        for n in names { self.remove(name: n) }
    }
}
