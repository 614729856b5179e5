import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

/// The proxy over real loopback sockets: a dispatcher on 127.0.0.1 in front of echo upstreams.
@Suite(.serialized) struct DispatchProxyTests {
    /// Runs `body` with alice and bob routed to their own upstreams.
    func withProxy(
        maxActiveUsers: Int = 8,
        frontProxyUsers: [String] = ["root"],
        _ body: (DispatchServer, HTTPClient, MapDir, TestHTTPServer, TestHTTPServer) async throws -> Void
    ) async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let bob = try TestHTTPServer.echoUpstream(name: "bob-up")
        let map = try MapDir()
        try map.write(["alice": alice.port, "bob": bob.port])
        let server = try await startDispatcher(
            map: map,
            maxActiveUsers: maxActiveUsers,
            frontProxyUsers: frontProxyUsers
        )
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            try await body(server, client, map, alice, bob)
        } catch {
            try? await client.shutdown()
            await server.shutdown()
            alice.stop()
            bob.stop()
            map.remove()
            throw error
        }
        try await client.shutdown()
        await server.shutdown()
        alice.stop()
        bob.stop()
        map.remove()
    }

    @Test func routesEachUserToTheirOwnUpstream() async throws {
        try await withProxy { server, client, _, _, _ in
            let a = try await send(client, server, path: "/a?x=1", headers: identity("alice"))
            #expect(a.status == 200)
            #expect(a.body == "name=alice-up user=alice path=/a?x=1 bytes=0")
            let b = try await send(client, server, path: "/b", headers: identity("bob"))
            #expect(b.status == 200)
            #expect(b.body == "name=bob-up user=bob path=/b bytes=0")
        }
    }

    @Test func streamsARequestBodyToTheUpstream() async throws {
        try await withProxy { server, client, _, _, _ in
            let body = Data(repeating: 0x61, count: 3 << 20)
            let r = try await send(
                client,
                server,
                path: "/upload",
                method: .POST,
                headers: identity("alice"),
                body: body
            )
            #expect(r.status == 200)
            #expect(r.body == "name=alice-up user=alice path=/upload bytes=\(3 << 20)")
        }
    }

    @Test func passesOnlyTheCheckedUsernameUpstream() async throws {
        try await withProxy { server, client, _, _, _ in
            var headers = identity("alice")
            headers += [
                ("X-authentik-email", "alice@example.org"), ("X-authentik-jwt", "e30.e30.sig"),
                ("x-AUTHENTIK-uid", "42"), ("X-authentik-name", "Alice"),
            ]
            let r = try await send(client, server, headers: headers)
            #expect(r.status == 200)
            #expect(r.headers["X-Seen-Authentik"] == ["x-authentik-username"])
            #expect(r.headers["X-Seen-Authentik-Count"] == ["1"])
        }
    }

    static let refusals: [(String, [(String, String)])] = [
        ("no identity headers", []),
        ("no username", [(Gate.groupsHeader, "T3 Users")]),
        ("empty username", identity("")),
        ("unknown user", identity("mallory")),
        ("case differs", identity("Alice")),
        ("trailing space", [(Gate.usernameHeader, "alice "), (Gate.groupsHeader, "T3 Users")]),
        ("username repeated", identity("alice") + [(Gate.usernameHeader, "bob")]),
        ("no groups header", [(Gate.usernameHeader, "alice")]),
        ("not in gate group", identity("alice", groups: "Staff|T3 Users Extra|t3 users")),
        ("empty groups", identity("alice", groups: "")),
        ("groups repeated", identity("alice") + [(Gate.groupsHeader, "T3 Users")]),
    ]

    @Test(arguments: refusals.indices) func refusesWith403(_ index: Int) async throws {
        let (what, headers) = Self.refusals[index]
        try await withProxy { server, client, _, alice, bob in
            let r = try await send(client, server, headers: headers)
            #expect(r.status == 403, "\(what)")
            #expect(r.body.contains("Forbidden"), "\(what)")
            #expect(alice.requestCount == 0 && bob.requestCount == 0, "\(what): no upstream may be contacted")
        }
    }

    @Test func refusesIdentityFromAPeerThatIsNotTheFrontProxy() async throws {
        // This process (root) connects, but only daemon's connections are believed.
        try await withProxy(frontProxyUsers: ["daemon"]) { server, client, _, alice, _ in
            let r = try await send(client, server, headers: identity("alice"))
            #expect(r.status == 403)
            #expect(alice.requestCount == 0)
        }
    }

    @Test func answers502WhenTheUpstreamIsDown() async throws {
        try await withProxy { server, client, map, alice, bob in
            let dead = try TestHTTPServer.echoUpstream(name: "dead")
            let deadPort = dead.port
            dead.stop()
            try map.write(["alice": alice.port, "bob": bob.port, "carol": deadPort])
            let r = try await send(client, server, headers: identity("carol"))
            #expect(r.status == 502)
            let a = try await send(client, server, headers: identity("alice"))
            #expect(a.status == 200)
        }
    }

    @Test func relaysWebSocketFrames() async throws {
        try await withProxy { server, _, _, _, _ in
            let ws = try RawWebSocket(server, headers: identity("alice"))
            #expect(ws.handshakeStatus == 101)
            for i in 0..<20 {
                try ws.sendText("hello \(i)")
                #expect(try ws.readText() == "hello \(i)")
            }
            #expect(server.tunnels.count == 1)
        }
    }

    @Test func refusesAWebSocketFromAnUnknownUser() async throws {
        try await withProxy { server, _, _, alice, _ in
            let ws = try RawWebSocket(server, headers: identity("mallory"))
            #expect(ws.handshakeStatus == 403)
            #expect(alice.requestCount == 0)
        }
    }

    @Test func ceilingRefusesANewUserWith429AndKeepsExistingOnes() async throws {
        try await withProxy(maxActiveUsers: 1) { server, client, _, _, bob in
            let ws = try RawWebSocket(server, headers: identity("alice"))
            #expect(ws.handshakeStatus == 101)
            let b = try await send(client, server, headers: identity("bob"))
            #expect(b.status == 429)
            #expect(b.body.contains("seats"))
            #expect(b.headers["Retry-After"] == ["60"])
            #expect(bob.requestCount == 0)
            let a = try await send(client, server, headers: identity("alice"))
            #expect(a.status == 200)
            try ws.sendText("still here")
            #expect(try ws.readText() == "still here")
        }
    }

    @Test func removedUserLosesAccessOnTheNextRequest() async throws {
        try await withProxy { server, client, map, alice, bob in
            #expect(try await send(client, server, headers: identity("bob")).status == 200)
            try map.write(["alice": alice.port])
            #expect(try await send(client, server, headers: identity("bob")).status == 403)
            #expect(try await send(client, server, headers: identity("alice")).status == 200)
            try map.write(["alice": alice.port, "bob": bob.port])
            #expect(try await send(client, server, headers: identity("bob")).status == 200)
        }
    }

    /// The map in force is kept open and checked with fstat: a rewrite in place (same inode) and a replacement
    /// while the old file has a second link must both be seen on the next request.
    @Test func removedUserLosesAccessWhenTheMapIsRewrittenInPlaceOrHardLinked() async throws {
        try await withProxy { server, client, map, alice, bob in
            #expect(try await send(client, server, headers: identity("bob")).status == 200)
            // In place: truncate and write the same file (no rename).
            let only = DispatchMap(users: [
                "alice": DispatchMap.User(osUser: "os-x", port: alice.port, ports: ["t3-serve@": alice.port])
            ])
            let handle = try #require(FileHandle(forWritingAtPath: map.path))
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: only.encoded())
            try handle.close()
            #expect(try await send(client, server, headers: identity("bob")).status == 403)
            try map.write(["alice": alice.port, "bob": bob.port])
            #expect(try await send(client, server, headers: identity("bob")).status == 200)
            // The file in force gets a second name, then a new map is renamed over the path.
            let second = map.dir + "/kept-copy.json"
            #expect(link(map.path, second) == 0)
            try map.write(["alice": alice.port])
            #expect(try await send(client, server, headers: identity("bob")).status == 403)
            #expect(try await send(client, server, headers: identity("alice")).status == 200)
        }
    }

    @Test func removedUserWebSocketIsClosed() async throws {
        try await withProxy { server, client, map, alice, _ in
            let ws = try RawWebSocket(server, headers: identity("bob"))
            #expect(ws.handshakeStatus == 101)
            try ws.sendText("ping")
            #expect(try ws.readText() == "ping")
            let keep = try RawWebSocket(server, headers: identity("alice"))
            #expect(keep.handshakeStatus == 101)
            try map.write(["alice": alice.port])
            // Any request notices the change; the reload closes bob's tunnel.
            #expect(try await send(client, server, headers: identity("alice")).status == 200)
            #expect(try ws.waitForClose())
            try keep.sendText("alice stays")
            #expect(try keep.readText() == "alice stays")
        }
    }

    @Test func invalidMapKeepsTheLastGoodOne() async throws {
        try await withProxy { server, client, map, _, _ in
            try map.writeRaw(Data("{\"version\": 1, \"users\": {".utf8))
            #expect(try await send(client, server, headers: identity("alice")).status == 200)
            try map.writeRaw(Data("{\"version\": 3, \"users\": {}}".utf8))
            #expect(try await send(client, server, headers: identity("bob")).status == 200)
            // Each of the dispatcher's threads notices the rewrite; the one that reads it first counts the reload,
            // possibly just after another thread served the request with the map it left in force.
            let counted = "workstation_dispatch_reloads_total{result=\"error\"} 2"
            for _ in 0..<100 where !server.metrics.render().contains(counted) {
                try await Task.sleep(for: .milliseconds(20))
            }
            let reloads = server.metrics.render().split(separator: "\n").filter {
                $0.hasPrefix("workstation_dispatch_reloads")
            }
            #expect(reloads.contains { $0 == counted }, "\(reloads)")
        }
    }

    @Test func burstOfMapRewritesNeverTearsARead() async throws {
        try await withProxy { server, client, map, alice, bob in
            let alicePort = alice.port
            let bobPort = bob.port
            let done = NIOLockedValueBox(false)
            let writer = Task.detached {
                defer { done.withLockedValue { $0 = true } }
                for i in 0..<1000 {
                    var users = ["alice": alicePort]
                    if i % 2 == 0 { users["bob"] = bobPort }
                    users["extra\(i)"] = 40000 + i
                    try map.write(users)
                }
            }
            var statuses: [Int: Int] = [:]
            var sent = 0
            while sent < 200 || !done.withLockedValue({ $0 }) {
                let r = try await send(client, server, headers: identity("alice"))
                statuses[r.status, default: 0] += 1
                sent += 1
                if sent > 20_000 { break }
            }
            try await writer.value
            #expect(statuses.keys.sorted() == [200], "statuses seen: \(statuses)")
            try map.write(["bob": bobPort])
            #expect(try await send(client, server, headers: identity("alice")).status == 403)
        }
    }

    @Test func servesHealthAndMetrics() async throws {
        try await withProxy { server, client, _, _, _ in
            _ = try await send(client, server, headers: identity("alice"))
            _ = try await send(client, server, headers: identity("mallory"))
            let port = server.metricsAddress!.port!
            let health = try await client.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"),
                timeout: .seconds(10)
            )
            #expect(health.status == .ok)
            let metrics = try await client.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"),
                timeout: .seconds(10)
            )
            let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
            #expect(text.contains("workstation_dispatch_requests_total{status=\"200\"} 1"))
            #expect(text.contains("workstation_dispatch_requests_total{status=\"403\"} 1"))
            #expect(text.contains("workstation_dispatch_upstream_latency_seconds_count 1"))
            #expect(text.contains("workstation_dispatch_open_websockets"))
            #expect(text.contains("workstation_dispatch_reloads_total{result=\"ok\"} 1"))
        }
    }
}
