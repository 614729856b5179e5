import NIOCore
import Testing

@testable import WorkstationDispatch

/// The upstream side's framing: what a user's own process may send back must never make one response swallow or
/// smuggle another (RFC 9112 sections 6 and 7).
@Suite struct ResponseFramerTests {
    /// Feeds `wire` in pieces of `step` bytes; returns the events, or the error.
    func frame(
        _ wire: String,
        step: Int = .max,
        isHead: Bool = false,
        dechunk: Bool = false
    ) -> (events: [String], body: String, error: String?, unread: Bool) {
        var framer = ResponseFramer()
        framer.expectResponse(isHead: isHead, dechunk: dechunk)
        var events: [String] = []
        var body = ""
        let bytes = Array(wire.utf8)
        var offset = 0
        do {
            while offset < bytes.count {
                let n = min(step, bytes.count - offset)
                framer.feed(ByteBuffer(bytes: bytes[offset..<(offset + n)]))
                offset += n
                while let e = try framer.next() {
                    switch e {
                    case .interim(let h): events.append("interim \(h.status)")
                    case .head(let h): events.append("head \(h.status) \(h.framing) keepAlive=\(h.keepAlive)")
                    case .body(let b): body += String(buffer: b)
                    case .end: events.append("end")
                    }
                    if framer.switched { break }
                }
            }
        } catch {
            return (events, body, "\(error)", framer.hasUnread)
        }
        return (events, body, nil, framer.hasUnread)
    }

    @Test func contentLengthBodyArrivesWhateverTheReadSizes() {
        let wire = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world"
        for step in [1, 2, 3, 7, 1000] {
            let r = frame(wire, step: step)
            #expect(r.error == nil)
            #expect(r.events == ["head 200 length(11) keepAlive=true", "end"], "step \(step)")
            #expect(r.body == "hello world")
        }
    }

    @Test func chunkedBodyPassesThroughByteForByte() {
        let chunks = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        let wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
        for step in [1, 2, 5, 13, 1000] {
            let r = frame(wire, step: step)
            #expect(r.error == nil, "step \(step): \(r.error ?? "")")
            #expect(r.events == ["head 200 chunked keepAlive=true", "end"], "step \(step)")
            #expect(r.body == chunks, "step \(step)")
            #expect(!r.unread)
        }
    }

    @Test func chunkedBodyIsDechunkedForAnHTTP10Client() {
        let wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        for step in [1, 4, 1000] {
            let r = frame(wire, step: step, dechunk: true)
            #expect(r.error == nil)
            #expect(r.body == "hello world", "step \(step)")
            #expect(r.events.last == "end")
        }
    }

    @Test(
        arguments: [
            ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, "head 204 none keepAlive=true"),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", false, "head 304 none keepAlive=true"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, "head 200 none keepAlive=true"),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false,
                "head 200 none keepAlive=false"
            ),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, "head 200 none keepAlive=false"),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", false,
                "head 200 none keepAlive=true"
            ),
        ] as [(String, Bool, String)]
    )
    func responsesWithoutABodyEndAtTheirHead(_ wire: String, _ isHead: Bool, _ head: String) {
        let r = frame(wire, isHead: isHead)
        #expect(r.error == nil)
        #expect(r.events == [head, "end"])
        #expect(r.body == "")
    }

    @Test func aBodyWithoutLengthEndsWhenTheUpstreamCloses() throws {
        var framer = ResponseFramer()
        framer.expectResponse(isHead: false, dechunk: false)
        framer.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nstreamed"))
        let e1 = try framer.next()
        guard case .head(let h) = e1 else {
            Issue.record("no head")
            return
        }
        #expect(h.framing == .untilClose)
        #expect(!h.keepAlive)
        let e2 = try framer.next()
        guard case .body(let b) = e2 else {
            Issue.record("no body")
            return
        }
        #expect(String(buffer: b) == "streamed")
        let closedEnds = try framer.upstreamClosed()
        #expect(closedEnds)
        // A close in the middle of a framed body is an error.
        var other = ResponseFramer()
        other.expectResponse(isHead: false, dechunk: false)
        other.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
        while try other.next() != nil {}
        var threw = false
        do { _ = try other.upstreamClosed() } catch is UpstreamFramingError { threw = true }
        #expect(threw)
    }

    @Test func interimResponsesComeBeforeTheFinalOne() {
        let r = frame(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        #expect(r.error == nil)
        #expect(r.events == ["interim 100", "interim 103", "head 200 length(2) keepAlive=true", "end"])
        #expect(r.body == "ok")
    }

    @Test func switchingProtocolsLeavesTheNextBytesUnread() throws {
        var framer = ResponseFramer()
        framer.expectResponse(isHead: false, dechunk: false)
        framer.feed(
            ByteBuffer(
                string:
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{02}hi"
            )
        )
        let e3 = try framer.next()
        guard case .head(let h) = e3 else {
            Issue.record("no head")
            return
        }
        #expect(h.status == 101)
        #expect(framer.switched)
        let after = try framer.next()
        #expect(after == nil)
        let unread = framer.takeUnread()
        let rest = try #require(unread)
        #expect(rest.readableBytes == 5)
    }

    @Test func bytesAfterTheResponseAreNoticed() {
        let r = frame("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(r.events == ["head 200 length(2) keepAlive=true", "end"])
        #expect(r.error?.contains("no request asked for") == true || r.unread)
    }

    @Test(
        arguments: [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Transfer-Encoding and Content-Length"
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "differing Content-Length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", "differing Content-Length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "not a number"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "not a number"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "single chunked"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "single chunked"),
            ("HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\n", "obsolete line folding"),
            ("HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"),
            ("HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 0\r\n\r\n", "bare LF"),
            ("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "invalid character"),
            ("HTTP/1.1 200 OK\r\n: x\r\n\r\n", "without a name"),
            ("HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\n\r\n", "control character"),
            ("HTTP/2 200 OK\r\n\r\n", "status line"),
            ("HTTP/1.1 20 OK\r\n\r\n", "three digits"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "three digits"),
            ("HTTP/1.1 099 OK\r\n\r\n", "out of range"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "no size"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n", "stray characters"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n", "too large"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "not followed by CRLF"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n", "bare LF"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n", "invalid character"),
        ] as [(String, String)]
    )
    func hostileResponsesAreRefused(_ wire: String, _ reason: String) {
        for step in [1, 1000] {
            let r = frame(wire, step: step)
            #expect(
                r.error?.contains(reason) == true,
                "step \(step): \(r.error ?? "no error") for \(wire.debugDescription)"
            )
            #expect(!r.events.contains("end"))
        }
    }

    @Test func oversizedHeadsAndChunkLinesAreRefused() {
        let bigHead =
            "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: ResponseFramer.maxHeadBytes) + "\r\n\r\n"
        #expect(frame(bigHead, step: 4096).error?.contains("larger than") == true)
        let bigLine =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;"
            + String(repeating: "e", count: ResponseFramer.maxChunkLineBytes) + "\r\n"
        #expect(frame(bigLine, step: 512).error?.contains("too long") == true)
    }

    @Test func headRewriteDropsHopByHopFieldsAndTheOnesConnectionNames() throws {
        let wire =
            "HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: p\r\nContent-Length: 2\r\nTE: trailers\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Kept: k\r\n\r\nok"
        var framer = ResponseFramer()
        framer.expectResponse(isHead: false, dechunk: false)
        framer.feed(ByteBuffer(string: wire))
        let e4 = try framer.next()
        guard case .head(let h) = e4 else {
            Issue.record("no head")
            return
        }
        var out = ByteBuffer()
        h.write(
            to: &out,
            minorVersion: 0,
            keepUpgrade: false,
            dropTransferEncoding: false,
            extra: ["Connection: close"]
        )
        #expect(
            String(buffer: out) == "HTTP/1.0 200 Fine\r\nContent-Length: 2\r\nX-Kept: k\r\nConnection: close\r\n\r\n"
        )
    }
}
