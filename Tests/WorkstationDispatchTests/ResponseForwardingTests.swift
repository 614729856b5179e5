import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

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
