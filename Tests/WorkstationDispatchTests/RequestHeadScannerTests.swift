import NIOCore
import Testing

@testable import WorkstationDispatch

/// The fast path reads only a strict subset of HTTP/1.1 itself; everything else goes to the full path unread, so
/// that no request is read one way here and another way upstream (RFC 9112).
@Suite struct RequestHeadScannerTests {
    func scan(_ text: String) -> HeadScan {
        Array(text.utf8).withUnsafeBytes { RequestHeadScanner.scan($0) }
    }

    func head(_ text: String) -> ScannedHead? {
        if case .head(let h) = scan(text) { return h }
        return nil
    }

    let ids = "X-authentik-username: alice\r\nX-authentik-groups: T3 Users\r\n"

    @Test func aPlainRequestIsServed() throws {
        let text = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\(ids)\r\nNEXT"
        let h = try #require(head(text))
        #expect(h.length == text.utf8.count - 4)
        #expect(h.requestLine == 0..<19)
        #expect(!h.isHead && h.idempotent && h.keepAlive)
        #expect(h.contentLength == 0)
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[h.user.value], as: UTF8.self) == "alice")
        #expect(String(decoding: bytes[h.groups.value], as: UTF8.self) == "T3 Users")
        #expect(h.user.count == 1 && h.groups.count == 1 && h.token.count == 0)
    }

    /// (what, request, expected: content length, keep-alive, HEAD, idempotent)
    static let served: [(String, String, Int, Bool, Bool, Bool)] = [
        ("POST with a body", "POST /u HTTP/1.1\r\nContent-Length: 42\r\n\r\n", 42, true, false, false),
        ("HEAD", "HEAD / HTTP/1.1\r\n\r\n", 0, true, true, true),
        ("close", "GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", 0, false, false, true),
        ("keep-alive, close", "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 0, false, false, true),
        ("PATCH", "PATCH / HTTP/1.1\r\nContent-Length:7\r\n\r\n", 7, true, false, false),
        ("DELETE", "DELETE /x HTTP/1.1\r\n\r\n", 0, true, false, true),
        ("OPTIONS", "OPTIONS /x HTTP/1.1\r\n\r\n", 0, true, false, true),
        ("PUT", "PUT /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, true, false, true),
        ("obs-text in a value", "GET / HTTP/1.1\r\nX-Name: caf\u{e9}\r\n\r\n", 0, true, false, true),
    ]

    @Test(arguments: served.indices) func servedHeads(_ i: Int) throws {
        let (what, text, length, keepAlive, isHead, idempotent) = Self.served[i]
        let h = try #require(head(text), "\(what)")
        #expect(h.contentLength == length, "\(what)")
        #expect(h.keepAlive == keepAlive, "\(what)")
        #expect(h.isHead == isHead, "\(what)")
        #expect(h.idempotent == idempotent, "\(what)")
    }

    /// (what, request) that the full path must read instead.
    static let handedOff: [(String, String)] = [
        ("HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"),
        ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("CONNECT", "CONNECT example.org:443 HTTP/1.1\r\n\r\n"),
        ("TRACE", "TRACE / HTTP/1.1\r\n\r\n"),
        ("lowercase method", "get / HTTP/1.1\r\n\r\n"),
        ("absolute form", "GET http://x/ HTTP/1.1\r\n\r\n"),
        ("asterisk form", "OPTIONS * HTTP/1.1\r\n\r\n"),
        ("two spaces", "GET  / HTTP/1.1\r\n\r\n"),
        ("tab in target", "GET /a\tb HTTP/1.1\r\n\r\n"),
        ("DEL in target", "GET /a\u{7f} HTTP/1.1\r\n\r\n"),
        ("bare LF after the request line", "GET / HTTP/1.1\nHost: x\r\n\r\n"),
        ("bare LF after a field", "GET / HTTP/1.1\r\nHost: x\n\r\n"),
        ("bare CR in a value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"),
        ("NUL in a value", "GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n"),
        ("obsolete folding", "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"),
        ("space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n"),
        ("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n"),
        ("chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
        ("signed length", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"),
        ("length list", "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n"),
        ("huge length", "POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n"),
        ("WebSocket", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        ("h2c", "GET / HTTP/1.1\r\nHTTP2-Settings: AAA\r\n\r\n"),
        ("Expect", "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
        ("Connection names a field", "GET / HTTP/1.1\r\nConnection: X-authentik-username\r\n\r\n"),
    ]

    @Test(arguments: handedOff.indices) func handedOffHeads(_ i: Int) {
        let (what, text) = Self.handedOff[i]
        guard case .handoff = scan(text) else {
            Issue.record("\(what): \(scan(text))")
            return
        }
    }

    /// The word-at-a-time value check agrees with the byte check at every position of a word and its tail.
    @Test(arguments: [0x00, 0x0A, 0x0D, 0x1F, 0x7F, 0x09, 0x20, 0x7E, 0x80, 0xFF] as [UInt8])
    func valueCharactersAreCheckedAtEveryPosition(_ byte: UInt8) {
        for length in 1...19 {
            for at in 0..<length {
                var value = [UInt8](repeating: 0x61, count: length)
                value[at] = byte
                let fast = value.withUnsafeBytes { HTTPField.allValueChars($0) }
                #expect(fast == HTTPField.isValueChar(byte), "byte \(byte) at \(at) of \(length)")
            }
        }
    }

    @Test func anUnfinishedHeadWaitsUntilItIsTooLong() {
        #expect(scan("GET / HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(scan("GET / HT") == .incomplete)
        let long = "GET / HTTP/1.1\r\nX-A: " + String(repeating: "a", count: RequestHeadScanner.maxHeadBytes)
        #expect(scan(long) == .handoff("head too long"))
    }

    @Test func identityValuesKeepTrailingWhitespaceAsTheFullPathDoes() throws {
        let text = "GET / HTTP/1.1\r\nX-authentik-username:   alice \r\nx-authentik-username: bob\r\n\r\n"
        let h = try #require(head(text))
        #expect(h.user.count == 2)
        #expect(String(decoding: Array(text.utf8)[h.user.value], as: UTF8.self) == "alice ")
    }

    @Test func theUpstreamHeadKeepsTheRequestAndDropsIdentityAndHopByHopFields() throws {
        let text =
            "POST /x HTTP/1.1\r\nHost: h\r\nX-authentik-username: mallory\r\nConnection: keep-alive\r\n"
            + "Content-Length: 2\r\nX-AUTHENTIK-jwt: t\r\nKeep-Alive: 5\r\nProxy-Authorization: p\r\nTE: trailers\r\n"
            + "Accept: */*\r\n\r\n"
        let h = try #require(head(text))
        var out = ByteBuffer()
        Array(text.utf8).withUnsafeBytes { RequestHeadScanner.writeUpstreamHead($0, h, user: "alice", into: &out) }
        #expect(
            String(buffer: out)
                == "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nAccept: */*\r\nX-authentik-username: alice\r\n\r\n"
        )
    }
}
