import Foundation
import NIOCore
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

#if canImport(Glibc)
import Glibc
#endif

/// The fast path serves the common request itself and hands every other connection to the full path at a request
/// boundary with the bytes it read, so that each request is answered exactly as before (docs/dispatch.md, "Request
/// path").
@Suite struct FastPathTests {
    let ids = "X-authentik-username: alice\r\nX-authentik-groups: T3 Users\r\n"

    /// The number of connections handed to the full path for `reason` (0 when none was).
    func handoffs(_ server: DispatchServer, _ reason: String) -> Int {
        let prefix = "workstation_dispatch_handoffs_total{reason=\"\(reason)\"} "
        let line = server.metrics.render().split(separator: "\n").first { $0.hasPrefix(prefix) }
        return line.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
    }

    func allHandoffs(_ server: DispatchServer) -> [String] {
        server.metrics.render().split(separator: "\n").map(String.init).filter {
            $0.hasPrefix("workstation_dispatch_handoffs_total{")
        }
    }

    func withDispatcher(
        frontProxyUsers: [String] = ["root"],
        _ body: (DispatchServer, TestHTTPServer) async throws -> Void
    ) async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        try map.write(["alice": alice.port])
        let server = try await startDispatcher(map: map, frontProxyUsers: frontProxyUsers)
        var failure: Error?
        do { try await body(server, alice) } catch { failure = error }
        await server.shutdown()
        alice.stop()
        map.remove()
        if let failure { throw failure }
    }

    @Test func plainRequestsOnAKeptAliveConnectionStayOnTheFastPath() async throws {
        try await withDispatcher { server, alice in
            let one = "GET /one HTTP/1.1\r\nHost: x\r\n\(ids)\r\n"
            let two = "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\(ids)\r\nhello"
            let three = "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(ids)\r\n"
            let text = try rawExchange(server, Array((one + two + three).utf8))
            let bodies = text.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(45) }
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(text)")
            #expect(bodies.first?.hasPrefix("name=alice-up user=alice path=/one bytes=0") == true, "\(bodies)")
            #expect(text.contains("path=/two bytes=5"))
            #expect(text.contains("path=/three bytes=0"))
            #expect(alice.connectionCount == 1)
            #expect(allHandoffs(server).isEmpty, "\(allHandoffs(server))")
        }
    }

    /// (what, request, status expected, handoff reason)
    static let handedOver: [(String, String, Int, String)] = [
        (
            "chunked body",
            "POST /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n{ids}\r\n3\r\nabc\r\n0\r\n\r\n",
            200, "field the fast path does not serve"
        ),
        ("HTTP/1.0", "GET /old HTTP/1.0\r\nHost: x\r\n{ids}\r\n", 200, "request line"),
        (
            "unknown user", "GET / HTTP/1.1\r\nConnection: close\r\nX-authentik-username: mallory\r\n\r\n", 403,
            "refused"
        ),
        ("bare LF", "GET / HTTP/1.1\r\nHost: x\nConnection: close\r\n{ids}\r\n", 400, "bare LF"),
        ("CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n{ids}\r\n", 405, "request line"),
    ]

    @Test(arguments: handedOver.indices) func otherRequestsAreAnsweredByTheFullPath(_ i: Int) async throws {
        let (what, request, status, reason) = Self.handedOver[i]
        try await withDispatcher { server, alice in
            let text = try rawExchange(server, Array(request.replacingOccurrences(of: "{ids}", with: ids).utf8))
            #expect(text.hasPrefix("HTTP/1.") && text.dropFirst(9).hasPrefix("\(status) "), "\(what): \(text)")
            #expect(handoffs(server, reason) == 1, "\(what): \(allHandoffs(server))")
            if status == 200 {
                #expect(alice.requestCount == 1, "\(what)")
            } else {
                #expect(alice.requestCount == 0, "\(what): refused before any upstream")
            }
        }
    }

    @Test func aConnectionHandedOverMidwayKeepsItsOrder() async throws {
        try await withDispatcher { server, alice in
            // The first request is served on the fast path; the second (chunked) goes to the full path with the
            // bytes already read, the third follows it there.
            let one = "GET /first HTTP/1.1\r\nHost: x\r\n\(ids)\r\n"
            let two = "POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\(ids)\r\n2\r\nhi\r\n0\r\n\r\n"
            let three = "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\(ids)\r\n"
            let text = try rawExchange(server, Array((one + two + three).utf8))
            let first = try #require(text.range(of: "path=/first bytes=0"))
            let second = try #require(text.range(of: "path=/second bytes=2"))
            let third = try #require(text.range(of: "path=/third bytes=0"))
            #expect(first.upperBound <= second.lowerBound && second.upperBound <= third.lowerBound)
            #expect(alice.requestCount == 3)
            #expect(handoffs(server, "field the fast path does not serve") == 1)
        }
    }

    @Test func aPeerThatIsNotTheFrontProxyIsRefusedByTheFullPath() async throws {
        // This test runs as root; only www-data is believed.
        try await withDispatcher(frontProxyUsers: ["www-data"]) { server, alice in
            let text = try rawExchange(server, Array("GET / HTTP/1.1\r\nConnection: close\r\n\(ids)\r\n".utf8))
            #expect(text.hasPrefix("HTTP/1.1 403 "), "\(text)")
            #expect(handoffs(server, "untrusted peer") == 1)
            #expect(alice.requestCount == 0)
        }
    }

    @Test func aNewTokenIsVerifiedOffTheLoopAndItsRequestsStayOnTheFastPath() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        try map.write(["alice": alice.port])
        let signer = try await TokenIdentityTests.Signer(kid: "k1")
        let server = try await TokenIdentityTests.startDispatcher(map: map, keys: signer)
        let good = try await signer.token()
        let forged = try await TokenIdentityTests.Signer(kid: "k1").token()
        let request = { (token: String, close: Bool) in
            "GET / HTTP/1.1\r\nHost: x\r\n\(close ? "Connection: close\r\n" : "")X-authentik-jwt: \(token)\r\n\r\n"
        }
        let port = server.localAddress!.port!
        let served = try exchange(
            on: try connectLoopback(port: port),
            Array((request(good, false) + request(good, true)).utf8)
        )
        let refused = try exchange(on: try connectLoopback(port: port), Array(request(forged, true).utf8))
        let handedForServed = allHandoffs(server)
        await server.shutdown()
        alice.stop()
        map.remove()
        #expect(served.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(served)")
        #expect(refused.hasPrefix("HTTP/1.1 403 "), "\(refused)")
        #expect(handedForServed == [#"workstation_dispatch_handoffs_total{reason="refused"} 1"#])
        #expect(alice.requestCount == 2)
    }

    /// The fast path needs no `fstat` per request: it watches the map's directory and the file in force. A change
    /// made through another name of the file, in another directory, is seen as well.
    @Test func aChangeThroughAHardLinkElsewhereIsInForceOnTheNextRequest() async throws {
        try await withDispatcher { server, alice in
            let map = try #require(server.config.dispatchFile as String?)
            let elsewhere = try TempRoot("dispatch-link")
            defer { elsewhere.remove("") }
            let request = Array("GET / HTTP/1.1\r\nConnection: close\r\n\(ids)\r\n".utf8)
            #expect(try rawExchange(server, request).hasPrefix("HTTP/1.1 200 "))
            #expect(link(map, elsewhere.path + "/other-name.json") == 0)
            let empty = DispatchMap(users: [:])
            let handle = try #require(FileHandle(forWritingAtPath: elsewhere.path + "/other-name.json"))
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: empty.encoded())
            try handle.close()
            let after = try rawExchange(server, request)
            #expect(after.hasPrefix("HTTP/1.1 403 "), "\(after)")
            #expect(alice.requestCount == 1)
        }
    }

    /// A request that arrives while the last response is still being written (the client reads slowly) waits for
    /// it: handed to the full path, its answer must not overtake the rest of the first response. The first response
    /// takes sizes around what the socket holds, so that in some of them its end has been read from the upstream but
    /// not yet written to the client when the second request comes.
    @Test func aRequestBehindASlowlyReadResponseWaitsForIt() async throws {
        let upstream = try TestHTTPServer { r in
            .text(r.uri.hasPrefix("/big/") ? String(repeating: "a", count: Int(r.uri.dropFirst(5)) ?? 0) : "after")
        }
        let map = try MapDir()
        try map.write(["alice": upstream.port])
        let server = try await startDispatcher(map: map)
        defer {
            upstream.stop()
            map.remove()
        }
        for size in stride(from: 64 << 10, through: 640 << 10, by: 16 << 10) {
            let fd = try connectDispatcher(server)
            let first = Array("GET /big/\(size) HTTP/1.1\r\nHost: x\r\n\(ids)\r\n".utf8)
            #expect(first.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == first.count)
            // The response fills the socket; the dispatcher holds the rest.
            try await Task.sleep(for: .milliseconds(50))
            let second =
                "POST /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\(ids)\r\n"
            let text = try exchange(on: fd, Array((second + "2\r\nhi\r\n0\r\n\r\n").utf8))
            let bodyStart = try #require(text.range(of: "\r\n\r\n")).upperBound
            let next = try #require(text.range(of: "HTTP/1.1 200 OK", range: bodyStart..<text.endIndex), "\(size)")
            let body = text[bodyStart..<next.lowerBound]
            #expect(
                body.utf8.count == size && body.allSatisfy { $0 == "a" },
                "the first body whole, then the second: \(size)"
            )
            #expect(text.hasSuffix("after"), "\(size)")
        }
        await server.shutdown()
    }

    /// An upstream (a person's own instance) that answers before the request's body is all sent must not make the
    /// rest of the body a request of its own on the front proxy's connection, with identity fields of the sender's
    /// choosing.
    @Test func aBodyAnsweredEarlyIsNeverReadAsARequest() async throws {
        let alice = try TestHTTPServer.rawReplies("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
        let bob = try TestHTTPServer.echoUpstream(name: "bob-up")
        let map = try MapDir()
        try map.write(["alice": alice.port, "bob": bob.port])
        let server = try await startDispatcher(map: map)
        defer {
            alice.stop()
            bob.stop()
            map.remove()
        }
        let smuggled =
            "GET /smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-authentik-username: bob\r\n"
            + "X-authentik-groups: T3 Users\r\n\r\n"
        let fd = try connectDispatcher(server)
        let head = Array(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(smuggled.utf8.count)\r\n\(ids)\r\n".utf8
        )
        #expect(head.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == head.count)
        try await Task.sleep(for: .milliseconds(200))  // alice's instance has answered, the body not yet sent
        // The dispatcher may have closed the connection already: the write may fail, the reply is read either way.
        _ = Array(smuggled.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let text = try exchange(on: fd, [])
        await server.shutdown()
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.hasSuffix("early"), "\(text)")
        #expect(text.contains("Connection: close\r\n"))
        #expect(bob.requestCount == 0, "the body reached bob's instance as a request")
    }
}
