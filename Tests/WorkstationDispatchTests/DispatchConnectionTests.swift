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
            #expect(await server.pools.idleCount() == 1)
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
            #expect(await server.pools.idleCount() == 2)
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

/// Responses are forwarded as the upstream's bytes, framed by the dispatcher: each framing reaches the client
/// intact, and one that does not frame never reaches it as a response.
@Suite struct ResponseForwardingTests {
    func through(_ reply: String, closeAfter: Bool = false, request: String) async throws -> String {
        let upstream = try TestHTTPServer.rawReplies(reply, closeAfter: closeAfter)
        let map = try MapDir()
        try map.write(["alice": upstream.port])
        let server = try await startDispatcher(map: map)
        defer { map.remove() }
        let text = try rawExchange(server, Array(request.utf8))
        await server.shutdown()
        upstream.stop()
        return text
    }

    let identityLines = "X-authentik-username: alice\r\nX-authentik-groups: T3 Users\r\n"

    @Test func chunkedResponsesReachAnHTTP11ClientChunked() async throws {
        let text = try await through(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            request: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Transfer-Encoding: chunked\r\n"))
        #expect(!text.contains("Keep-Alive"))
        #expect(text.hasSuffix("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
    }

    @Test func chunkedResponsesReachAnHTTP10ClientAsPlainBytesThenClose() async throws {
        let text = try await through(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            request: "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(!text.contains("Transfer-Encoding"))
        #expect(text.contains("Connection: close\r\n"))
        #expect(text.hasSuffix("\r\n\r\nhello world"))
    }

    @Test func aBodyDelimitedByTheUpstreamsCloseEndsTheClientsConnection() async throws {
        let text = try await through(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
            closeAfter: true,
            request: "GET / HTTP/1.1\r\nHost: x\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Connection: close\r\n"))
        #expect(text.hasSuffix("\r\n\r\nuntil the end"))
    }

    @Test(arguments: [
        "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
    ])
    func interimResponsesAreDropped(_ interim: String) async throws {
        // A front proxy that takes a 1xx for the final answer would otherwise read the 200 as the next response.
        let text = try await through(
            interim + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            request: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(!text.contains(" 100 ") && !text.contains(" 103 "))
        #expect(text.hasSuffix("\r\n\r\nok"))
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\r\n folded: b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "garbage\r\n\r\n",
    ])
    func anUpstreamResponseThatDoesNotFrameIsA502(_ reply: String) async throws {
        let text = try await through(reply, request: "GET / HTTP/1.1\r\nHost: x\r\n\(identityLines)\r\n")
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(text)")
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: upgrade\r\n",
    ])
    func aSwitchNobodyAskedForIsA502(_ request: String) async throws {
        let text = try await through(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW",
            request: request + identityLines + "\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(text)")
        #expect(!text.contains("RAW"))
    }

    @Test func connectIsRefused() async throws {
        let text = try await through(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            request: "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), "\(text)")
    }

    /// An upstream that keeps writing after its response must not make the dispatcher buffer it: the upstream
    /// connection is closed at the first byte nobody asked for, while the client's connection stays open.
    @Test func bytesAfterAResponseCloseTheUpstreamConnection() async throws {
        let upstream = try TestHTTPServer.rawReplies(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            streamAfter: true
        )
        let map = try MapDir()
        try map.write(["alice": upstream.port])
        let server = try await startDispatcher(map: map)
        defer { map.remove() }
        // A kept-alive client connection that sends one request and stays open.
        let fd = try connectDispatcher(server)
        defer { close(fd) }
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\(identityLines)\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var closedInTime = false
        for _ in 0..<100 {
            if upstream.closedConnections >= 1 {
                closedInTime = true
                break
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        #expect(closedInTime, "the dispatcher kept reading an upstream that writes past its response")
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        #expect(n > 0 && String(decoding: buf[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200 OK\r\n"))
        await server.shutdown()
        upstream.stop()
    }

    @Test func aBrokenChunkAfterTheHeadCutsTheClientConnection() async throws {
        let text = try await through(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXXHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            request: "GET / HTTP/1.1\r\nHost: x\r\n\(identityLines)\r\n"
        )
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        // The smuggled second response never reaches the client as one.
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 2)
    }
}
