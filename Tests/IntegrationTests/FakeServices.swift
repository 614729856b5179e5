import Foundation
import NIOSSL
import WorkstationTestSupport

extension TestHTTPServer {
    /// A JSON API server: `respond` gives the status and body of each answer (`Content-Type: application/json`
    /// when there is a body).
    convenience init(tls: NIOSSLContext? = nil, _ respond: @escaping @Sendable (TestRequest) -> (Int, Data)) throws {
        try self.init(tls: tls) { request in
            let (status, body) = respond(request)
            return TestResponse(
                status: status,
                headers: body.isEmpty ? [] : [("Content-Type", "application/json")],
                body: body
            )
        }
    }
}

func json(_ obj: Any) -> Data { try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) }

/// The documented subset of Authentik API v3: users and groups lists (paged), add_user/remove_user.
final class FakeAuthentik: @unchecked Sendable {
    struct Group {
        var pk: String
        var name: String
        var members: Set<Int>
    }
    let token = "ak-test-token-0123456789"
    let lock = NSLock()
    var users: [Int: String] = [:]
    var groups: [Group] = []
    /// Page size the server enforces, so every list needs several pages.
    var serverPageSize = 2
    /// User pks whose add_user/remove_user answers 403.
    var forbidden: Set<Int> = []
    /// When set, every request answers this status (e.g. 500).
    var failEverything: Int?
    private(set) var server: TestHTTPServer!

    /// Echo the presented Authorization header in a refusal's detail, as a careless server might.
    var echoPresentedToken = false

    init(users: [String], group: String = "T3 Users", members: [String] = [], tls: NIOSSLContext? = nil) throws {
        for (i, u) in users.enumerated() { self.users[100 + i] = u }
        let pks = Set(members.compactMap { m in self.users.first { $0.value == m }?.key })
        groups = [
            Group(pk: "5f8e7c1a-0000-4000-8000-000000000001", name: "Other", members: []),
            Group(pk: "5f8e7c1a-0000-4000-8000-00000000000a", name: group, members: pks),
        ]
        server = try TestHTTPServer(tls: tls) { [unowned self] r in self.lock.withLock { self.answer(r) } }
    }

    var url: String { server.url }
    func members(_ group: String = "T3 Users") -> [String] {
        lock.withLock { (groups.first { $0.name == group }?.members ?? []).compactMap { users[$0] }.sorted() }
    }

    private func page(_ all: [[String: Any]], _ r: TestRequest) -> (Int, Data) {
        let size = min(Int(r.query["page_size"] ?? "") ?? 100, serverPageSize)
        let page = max(1, Int(r.query["page"] ?? "") ?? 1)
        let start = (page - 1) * size
        let slice = start < all.count ? Array(all[start..<min(all.count, start + size)]) : []
        let pages = max(1, (all.count + size - 1) / size)
        let next = page < pages ? page + 1 : 0
        return (
            200,
            json([
                "pagination": [
                    "next": next, "previous": page > 1 ? page - 1 : 0, "count": all.count, "current": page,
                    "total_pages": pages, "start_index": start + 1, "end_index": start + slice.count,
                ],
                "results": slice,
            ])
        )
    }

    private func answer(_ r: TestRequest) -> (Int, Data) {
        if let f = failEverything { return (f, json(["detail": "server error"])) }
        guard r.headers["authorization"] == "Bearer \(token)" else {
            if echoPresentedToken {
                let padding = String(repeating: "x", count: 250)
                return (
                    403,
                    json([
                        "detail": "\(padding) header '\(r.headers["authorization"] ?? "")' is invalid/expired",
                        "code": "authentication_failed",
                    ])
                )
            }
            return (403, json(["detail": "Token invalid/expired", "code": "authentication_failed"]))
        }
        let parts = r.path.split(separator: "/").map(String.init)
        switch (r.method, parts) {
        case ("GET", ["api", "v3", "core", "users"]):
            var list = users.sorted { $0.key < $1.key }.map { (pk: $0.key, name: $0.value) }
            if let u = r.query["username"] { list = list.filter { $0.name == u } }
            if let g = r.query["groups_by_pk"] {
                guard let group = groups.first(where: { $0.pk == g }) else {
                    return (400, json(["groups_by_pk": ["Select a valid choice."]]))
                }
                list = list.filter { group.members.contains($0.pk) }
            }
            return page(
                list.map { ["pk": $0.pk, "username": $0.name, "name": $0.name.capitalized, "is_active": true] },
                r
            )
        case ("GET", ["api", "v3", "core", "groups"]):
            var list = groups
            if let n = r.query["name"] { list = list.filter { $0.name == n } }
            return page(list.map { ["pk": $0.pk, "name": $0.name, "num_pk": 1] }, r)
        case ("POST", let p)
        where p.count == 6 && p[0...3] == ["api", "v3", "core", "groups"] && ["add_user", "remove_user"].contains(p[5]):
            guard let gi = groups.firstIndex(where: { $0.pk == p[4] }) else {
                return (404, json(["detail": "No Group matches the given query."]))
            }
            guard let obj = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any],
                let pk = (obj["pk"] as? NSNumber)?.intValue
            else {
                return (400, json(["non_field_errors": ["pk is required"], "code": "invalid"]))
            }
            if forbidden.contains(pk) {
                return (
                    403,
                    json(["detail": "You do not have permission to perform this action.", "code": "permission_denied"])
                )
            }
            guard users[pk] != nil else { return (404, json(["detail": "No User matches the given query."])) }
            if p[5] == "add_user" { groups[gi].members.insert(pk) } else { groups[gi].members.remove(pk) }
            return (204, Data())
        default:
            return (404, json(["detail": "Not found."]))
        }
    }
}

/// The documented subset of Vault's KV version 2 read API.
final class FakeVault: @unchecked Sendable {
    struct Version {
        var data: [String: String]?
        var deletionTime = ""
        var destroyed = false
    }
    let token = "hvs.test-token-abcdef"
    let lock = NSLock()
    /// "mount/path" -> versions, oldest first.
    var secrets: [String: [Version]] = [:]
    /// Paths the token's policy does not allow.
    var denied: Set<String> = []
    var namespace: String?
    private(set) var server: TestHTTPServer!

    /// Echo the presented token in a refusal's errors and in a deletion time, as a careless server might.
    var echoPresentedToken = false

    init(tls: NIOSSLContext? = nil) throws {
        server = try TestHTTPServer(tls: tls) { [unowned self] r in self.lock.withLock { self.answer(r) } }
    }
    var url: String { server.url }

    private func answer(_ r: TestRequest) -> (Int, Data) {
        guard r.headers["x-vault-token"] == token else {
            if echoPresentedToken {
                return (403, json(["errors": ["permission denied for token \(r.headers["x-vault-token"] ?? "")"]]))
            }
            return (403, json(["errors": ["permission denied"]]))
        }
        if let ns = namespace, r.headers["x-vault-namespace"] != ns {
            return (403, json(["errors": ["permission denied"]]))
        }
        let parts = r.path.split(separator: "/").map(String.init)
        guard r.method == "GET", parts.count >= 4, parts[0] == "v1", parts[2] == "data" else {
            return (404, json(["errors": []]))
        }
        let key = parts[1] + "/" + parts[3...].joined(separator: "/")
        if denied.contains(key) { return (403, json(["errors": ["1 error occurred:\n\t* permission denied\n\n"]])) }
        guard let versions = secrets[key], let latest = versions.last else { return (404, json(["errors": []])) }
        let meta: [String: Any] = [
            "version": versions.count, "deletion_time": latest.deletionTime, "destroyed": latest.destroyed,
            "created_time": "2026-01-01T00:00:00Z", "custom_metadata": NSNull(),
        ]
        guard let data = latest.data, latest.deletionTime.isEmpty, !latest.destroyed else {
            return (404, json(["data": ["data": NSNull(), "metadata": meta]]))
        }
        return (
            200,
            json([
                "request_id": "r", "lease_duration": 0, "renewable": false, "data": ["data": data, "metadata": meta],
            ])
        )
    }
}
