import Foundation
import NIOHTTP1
import WorkstationCore

/// The Authentik operations workstation needs (API v3, `schema.yml` in the authentik repository).
/// All calls block until answered; each throws `AuthentikError` or `TransportError`.
public protocol AuthentikClient: Sendable {
    /// `GET /api/v3/core/users/?username=NAME` (`core_users_list`), paged; the user whose username is exactly `username`.
    /// - Throws: `AuthentikError.unknownUser` when none matches exactly. Idempotent (reads).
    func findUser(username: String) throws -> IdPUser
    /// `GET /api/v3/core/groups/?name=NAME&include_users=false` (`core_groups_list`); the group's pk (a UUID string).
    /// - Throws: `AuthentikError.unknownGroup` when none matches exactly. Idempotent (reads).
    func findGroup(name: String) throws -> String
    /// `GET /api/v3/core/users/?groups_by_pk=PK` (`core_users_list`), every page; the group's direct members.
    func groupMembers(groupPK: String) throws -> [IdPUser]
    /// `POST /api/v3/core/groups/PK/add_user/` with `{"pk": USER}`; success is 204. Idempotent on the server.
    func addMember(groupPK: String, userPK: Int) throws
    /// `POST /api/v3/core/groups/PK/remove_user/` with `{"pk": USER}`; success is 204. For the offboarding cut stage
    /// only (a revoke); apply never calls it.
    func removeMember(groupPK: String, userPK: Int) throws
}

/// Why an Authentik call failed. Messages name the operation and what to do, never the token.
public enum AuthentikError: Error, CustomStringConvertible, Sendable, Equatable {
    case unknownUser(String)
    case unknownGroup(String)
    /// A non-success status: operation, status code, the server's detail.
    case status(operation: String, code: Int, detail: String?)
    case badResponse(operation: String, reason: String)
    case noToken(String)

    public var description: String {
        switch self {
        case .unknownUser(let u):
            "no Authentik user has the username '\(printable(u))' (exact match); fix authentik_user in the roster or create the user in Authentik"
        case .unknownGroup(let g):
            "Authentik has no group named '\(printable(g))'; create it or fix authentik.gate_group"
        case .status(let op, let code, let detail):
            {
                let d = detail.map { ": \($0)" } ?? ""
                switch code {
                case 401, 403:
                    return
                        "\(op) was refused (\(code))\(d); check that the API token is valid and may manage users and groups"
                case 404: return "\(op) found nothing (404)\(d); the user or group no longer exists in Authentik"
                case 400: return "\(op) was rejected (400)\(d)"
                default: return "\(op) failed with HTTP \(code)\(d)"
                }
            }()
        case .badResponse(let op, let reason): "\(op): unexpected answer from Authentik (\(reason))"
        case .noToken(let how): "no Authentik API token: \(how)"
        }
    }
}

/// The live client on AsyncHTTPClient: `Authorization: Bearer TOKEN`, lists followed through `pagination.next`
/// until it is 0.
public struct LiveAuthentikClient: AuthentikClient {
    let base: String
    let token: Redacted
    let pageSize: Int
    let http: HTTPTransport
    /// Stops a server whose `next` never reaches 0.
    static let maxPages = 10_000

    /// - Parameters: base URL without trailing slash, the API token, `page_size`, the per-request deadline in
    ///   seconds, and the CAs trusted for https (`authentik.ca_file`, `SSL_CERT_FILE`).
    public init(baseURL: String, token: String, pageSize: Int = 100, timeout: Int = 10, trust: TLSTrust = TLSTrust()) {
        self.base = baseURL
        self.token = Redacted(Data(token.utf8))
        self.pageSize = pageSize
        self.http = HTTPTransport(timeout: timeout, trust: trust, secrets: [self.token])
    }

    var headers: [(String, String)] {
        [
            ("Authorization", "Bearer " + String(decoding: token.bytes, as: UTF8.self)), ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ]
    }

    func url(_ path: String, _ query: [(String, String)] = []) -> String {
        var c = URLComponents()
        c.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        let q = c.percentEncodedQuery.map { "?" + $0.replacingOccurrences(of: "+", with: "%2B") } ?? ""
        return base + path + q
    }

    /// Every `results` item of a paged list.
    func list(_ operation: String, _ path: String, _ query: [(String, String)]) throws -> [[String: Any]] {
        var page = 1
        var out: [[String: Any]] = []
        for _ in 0..<Self.maxPages {
            let r = try http.send(
                .GET,
                url(path, query + [("page", String(page)), ("page_size", String(pageSize))]),
                headers: headers
            )
            guard r.status == 200 else {
                throw AuthentikError.status(operation: operation, code: r.status, detail: http.detail(r.body))
            }
            guard let obj = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any],
                let results = obj["results"] as? [[String: Any]]
            else {
                throw AuthentikError.badResponse(operation: operation, reason: "no results list")
            }
            out += results
            let next = ((obj["pagination"] as? [String: Any])?["next"] as? NSNumber)?.intValue ?? 0
            if next == 0 { return out }
            guard next > page else {
                throw AuthentikError.badResponse(
                    operation: operation,
                    reason: "pagination.next \(next) does not advance past page \(page)"
                )
            }
            page = next
        }
        throw AuthentikError.badResponse(operation: operation, reason: "more than \(Self.maxPages) pages")
    }

    static func user(_ o: [String: Any]) -> IdPUser? {
        guard let pk = (o["pk"] as? NSNumber)?.intValue, let name = o["username"] as? String else { return nil }
        return IdPUser(pk: pk, username: name)
    }

    public func findUser(username: String) throws -> IdPUser {
        let op = "looking up Authentik user '\(printable(username))'"
        let found = try list(op, "/api/v3/core/users/", [("username", username)]).compactMap(Self.user)
        guard let u = found.first(where: { $0.username == username }) else {
            throw AuthentikError.unknownUser(username)
        }
        return u
    }

    public func findGroup(name: String) throws -> String {
        let op = "looking up Authentik group '\(printable(name))'"
        let found = try list(op, "/api/v3/core/groups/", [("name", name), ("include_users", "false")])
        guard let g = found.first(where: { ($0["name"] as? String) == name }) else {
            throw AuthentikError.unknownGroup(name)
        }
        guard let pk = g["pk"] as? String else {
            throw AuthentikError.badResponse(operation: op, reason: "group without a pk")
        }
        return pk
    }

    public func groupMembers(groupPK: String) throws -> [IdPUser] {
        let op = "listing the members of Authentik group \(groupPK)"
        return try list(op, "/api/v3/core/users/", [("groups_by_pk", groupPK)]).map { o in
            guard let u = Self.user(o) else {
                throw AuthentikError.badResponse(operation: op, reason: "a user without pk or username")
            }
            return u
        }
    }

    public func addMember(groupPK: String, userPK: Int) throws { try member("add_user", groupPK, userPK) }
    public func removeMember(groupPK: String, userPK: Int) throws { try member("remove_user", groupPK, userPK) }

    func member(_ verb: String, _ groupPK: String, _ userPK: Int) throws {
        let op =
            "\(verb == "add_user" ? "adding" : "removing") Authentik user \(userPK) \(verb == "add_user" ? "to" : "from") group \(groupPK)"
        guard groupPK.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == "-") }) else {
            throw AuthentikError.badResponse(operation: op, reason: "group pk is not a UUID")
        }
        let r = try http.send(
            .POST,
            url("/api/v3/core/groups/\(groupPK)/\(verb)/"),
            headers: headers,
            body: Data("{\"pk\":\(userPK)}".utf8)
        )
        guard r.status == 204 || r.status == 200 else {
            throw AuthentikError.status(operation: op, code: r.status, detail: http.detail(r.body))
        }
    }
}
