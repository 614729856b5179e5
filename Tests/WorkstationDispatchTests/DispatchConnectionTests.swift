import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

/// Connection handling: pipelined requests are answered in order; idle kept-alive upstream connections survive the
/// client connection that opened them; a kept-alive connection the upstream closes just as a request goes out costs
/// an idempotent request nothing. The dispatcher runs on its own one-thread group, so all client connections share
/// one pool and the counts are exact.
@Suite(.serialized) struct DispatchConnectionTests {
    func withOneLoopProxy(
        users: [String],
        upstreamPort: Int,
        _ body: (DispatchServer, HTTPClient) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let map = try MapDir()
        try map.write(Dictionary(uniqueKeysWithValues: users.map { ($0, upstreamPort) }))
        let server = try await startDispatcher(map: map, group: group)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var failure: Error?
        do { try await body(server, client) } catch { failure = error }
        try? await client.shutdown()
        await server.shutdown()
        try? await group.shutdownGracefully()
        map.remove()
        if let failure { throw failure }
    }

    @Test func idleUpstreamConnectionServesTheNextClientConnection() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        try await withOneLoopProxy(users: ["alice"], upstreamPort: alice.port) { server, _ in
            for i in 0..<5 {
                let r = try requestOnNewConnection(server, headers: identity("alice"))
                #expect(r.status == 200, "request \(i)")
                #expect(r.body == "name=alice-up user=alice path=/ bytes=0", "request \(i)")
            }
            #expect(alice.requestCount == 5)
            #expect(alice.connectionCount == 1, "five client connections, one upstream connection")
            #expect(await server.idleUpstreamConnections() == 1)
        }
        alice.stop()
    }

    @Test func pooledConnectionIsNotLentToAnotherUserOnTheSamePort() async throws {
        let shared = try TestHTTPServer.echoUpstream(name: "shared-up")
        try await withOneLoopProxy(users: ["alice", "bob"], upstreamPort: shared.port) { server, _ in
            #expect(try requestOnNewConnection(server, headers: identity("alice")).status == 200)
            let b = try requestOnNewConnection(server, headers: identity("bob"))
            #expect(b.status == 200)
            #expect(b.body.contains("user=bob"))
            #expect(shared.connectionCount == 2)
            #expect(await server.idleUpstreamConnections() == 2)
        }
        shared.stop()
    }

    @Test func closedIdleConnectionIsRetriedForAnIdempotentRequest() async throws {
        let up = try TestHTTPServer.oneShotUpstream()
        try await withOneLoopProxy(users: ["alice"], upstreamPort: up.port) { server, client in
            // New client connections: the second takes the pooled connection, which the upstream closes.
            #expect(try requestOnNewConnection(server, headers: identity("alice")).status == 200)
            let r = try requestOnNewConnection(server, headers: identity("alice"))
            #expect(r.status == 200)
            #expect(r.body == "one shot")
            #expect(up.requestHeads == 3, "first request, the one the closing connection swallowed, its retry")
            // One kept-alive client connection: its own upstream connection is reused, closed, retried.
            for _ in 0..<3 {
                #expect(try await send(client, server, headers: identity("alice")).status == 200)
            }
        }
        up.stop()
    }

    @Test func closedIdleConnectionIsNotRetriedForAPost() async throws {
        let up = try TestHTTPServer.oneShotUpstream()
        try await withOneLoopProxy(users: ["alice"], upstreamPort: up.port) { server, _ in
            #expect(try requestOnNewConnection(server, headers: identity("alice")).status == 200)
            let r = try requestOnNewConnection(server, method: "POST", headers: identity("alice"), body: "pay once")
            #expect(r.status == 502, "a POST the upstream may have seen is never sent twice")
            #expect(up.requestHeads == 2)
        }
        up.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        try await withOneLoopProxy(users: ["alice"], upstreamPort: alice.port) { server, _ in
            // Three requests in one write (RFC 9112 section 9.3.2); the last asks to close, so reading ends.
            var text = ""
            for (i, path) in ["/one", "/two", "/three"].enumerated() {
                text += "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                text += "\(Gate.usernameHeader): alice\r\n\(Gate.groupsHeader): T3 Users\r\n"
                text += i == 2 ? "Connection: close\r\n\r\n" : "\r\n"
            }
            let reply = try rawExchange(server, Array(text.utf8))
            let statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(statuses == ["200", "200", "200"])
            let one = try #require(reply.range(of: "path=/one "))
            let two = try #require(reply.range(of: "path=/two "))
            let three = try #require(reply.range(of: "path=/three "))
            #expect(one.upperBound < two.lowerBound && two.upperBound < three.lowerBound)
            #expect(alice.requestCount == 3)
        }
        alice.stop()
    }

    @Test func identityIsCheckedAgainOnEveryRequestOfAConnection() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        try await withOneLoopProxy(users: ["alice", "bob"], upstreamPort: alice.port) { server, _ in
            // One connection: a good request, the same name without the gate group, then a malformed name.
            func request(_ user: String, _ groups: String, close: Bool = false) -> String {
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\(Gate.usernameHeader): \(user)\r\n\(Gate.groupsHeader): \(groups)\r\n"
                    + (close ? "Connection: close\r\n\r\n" : "\r\n")
            }
            var reply = try rawExchange(server, Array((request("alice", "T3 Users") + request("alice", "Staff")).utf8))
            var statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(statuses == ["200", "403"])
            reply = try rawExchange(
                server,
                Array((request("alice", "T3 Users") + request("alice|bob", "T3 Users")).utf8)
            )
            statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(statuses == ["200", "403"])
            reply = try rawExchange(
                server,
                Array((request("alice", "T3 Users") + request("bob", "T3 Users", close: true)).utf8)
            )
            #expect(reply.contains("user=alice") && reply.contains("user=bob"))
            #expect(alice.requestCount == 4)
        }
        alice.stop()
    }
}
