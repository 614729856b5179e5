import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One identity field of a scanned request head: how often it occurs and where its first value is (offsets into
/// the scanned bytes, optional whitespace trimmed).
struct ScannedField: Equatable {
    var count = 0
    var value: Range<Int> = 0..<0
}

/// A request head the fast path serves itself (`RequestHeadScanner.scan`).
struct ScannedHead: Equatable {
    /// Bytes of the head, request line through the empty line.
    var length: Int
    /// The request line, without its CRLF.
    var requestLine: Range<Int>
    /// The method is HEAD (its response has no body).
    var isHead: Bool
    /// GET, HEAD, OPTIONS, PUT or DELETE: may be sent again on a new connection (RFC 9110 section 9.2.2).
    var idempotent: Bool
    /// The body's length (`Content-Length`, 0 when absent).
    var contentLength: Int
    /// The client keeps the connection after the response (HTTP/1.1 without `Connection: close`).
    var keepAlive: Bool
    var user = ScannedField()
    var groups = ScannedField()
    var token = ScannedField()
}

/// The outcome of scanning a client's bytes for the next request head.
enum HeadScan: Equatable {
    /// No complete head yet.
    case incomplete
    /// Outside what the fast path serves: the connection goes to the full HTTP path (NIO's decoder, which answers
    /// anything malformed with 400). The reason is for the handoff counter and the debug log.
    case handoff(String)
    case head(ScannedHead)
}

/// The request heads the fast path serves itself: a strict subset of HTTP/1.1 (RFC 9112), for which being strict
/// costs nothing, so that no request is read one way here and another way upstream.
///
/// Accepted: `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`; an origin-form target (starting with
/// `/`, no control character, space or DEL); exactly `HTTP/1.1`; lines ending in CRLF; field names of `tchar`
/// followed at once by `:`; values of visible ASCII, space, tab and obs-text; at most one `Content-Length` of
/// digits only; `Connection` naming only `close` or `keep-alive`. Anything else, including `Transfer-Encoding`,
/// `Upgrade` (WebSocket handshakes), `Expect`, obsolete line folding, a bare LF and a head longer than
/// `maxHeadBytes`, is handed to the full HTTP path unread, which serves or refuses it as before.
enum RequestHeadScanner {
    /// Longest head the fast path reads; a longer one goes to the full path (whose limit is 80 KiB).
    static let maxHeadBytes = 32 * 1024

    /// Scans `bytes` (the unread bytes of a client connection) for one request head.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> HeadScan {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .incomplete }
        let count = bytes.count
        // The request line.
        guard let lineEnd = lineEnd(bytes, from: 0) else {
            return count >= maxHeadBytes ? .handoff("head too long") : .incomplete
        }
        if lineEnd < 0 { return .handoff("bare LF") }
        guard let line = requestLine(bytes[field: 0..<lineEnd]) else { return .handoff("request line") }
        var head = ScannedHead(
            length: 0,
            requestLine: 0..<lineEnd,
            isHead: line.isHead,
            idempotent: line.idempotent,
            contentLength: 0,
            keepAlive: true
        )
        var sawLength = false
        var at = lineEnd + 2
        while true {
            guard let end = self.lineEnd(bytes, from: at) else {
                return count >= maxHeadBytes ? .handoff("head too long") : .incomplete
            }
            if end < 0 { return .handoff("bare LF") }
            if end == at {
                head.length = end + 2
                return head.length > maxHeadBytes ? .handoff("head too long") : .head(head)
            }
            // name ":" OWS value OWS (RFC 9112 section 5); a line starting with whitespace is obsolete folding.
            var colon = at
            while colon < end, HTTPField.isTokenChar(base.load(fromByteOffset: colon, as: UInt8.self)) {
                colon &+= 1
            }
            guard colon > at, colon < end, base.load(fromByteOffset: colon, as: UInt8.self) == 0x3A else {
                return .handoff("field name")
            }
            guard HTTPField.allValueChars(UnsafeRawBufferPointer(start: base + colon + 1, count: end - colon - 1))
            else {
                return .handoff("field value")
            }
            let name = bytes[field: at..<colon]
            // The value as the full path's decoder gives it: leading whitespace dropped, trailing kept (so that
            // `alice ` is refused on both paths, not routed on one).
            var valueStart = colon + 1
            while valueStart < end, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart &+= 1 }
            let value = valueStart..<end
            let trimmed = HTTPField.trimmingOWS(bytes[field: value])
            switch classify(name) {
            case .user: note(&head.user, value)
            case .groups: note(&head.groups, value)
            case .token: note(&head.token, value)
            case .contentLength:
                guard !sawLength, let n = decimal(trimmed) else { return .handoff("Content-Length") }
                sawLength = true
                head.contentLength = n
            case .connection:
                var other = false
                HTTPField.forEachToken(trimmed) { token in
                    if HTTPField.equals(token, lowercase: "close") {
                        head.keepAlive = false
                    } else if !HTTPField.equals(token, lowercase: "keep-alive") {
                        other = true
                    }
                }
                if other { return .handoff("Connection names a field") }
            case .unserved: return .handoff("field the fast path does not serve")
            case .other: break
            }
            at = end + 2
        }
    }

    /// Writes the head sent upstream into `out`: the request line as received, then every field line as received
    /// except those `Gate.isStripped` names (`X-authentik-*`, hop-by-hop), then `X-authentik-username: user`,
    /// then the empty line. The same fields `Gate.upstreamHeaders` keeps, for the heads this scanner accepts.
    static func writeUpstreamHead(
        _ bytes: UnsafeRawBufferPointer,
        _ head: ScannedHead,
        user: String,
        into out: inout ByteBuffer
    ) {
        out.writeBytes(bytes[field: 0..<(head.requestLine.upperBound + 2)])
        var at = head.requestLine.upperBound + 2
        let last = head.length - 2
        var keptFrom = at
        let base = bytes.baseAddress!
        while at < last {
            // Lines were checked by `scan`: each ends in CRLF and has a colon after its name.
            let end = base.distance(to: UnsafeRawPointer(memchr(base + at, 0x0A, last - at)!)) - 1
            let colon = base.distance(to: UnsafeRawPointer(memchr(base + at, 0x3A, end - at)!))
            let name = bytes[field: at..<colon]
            if Gate.isStripped(name) {
                if keptFrom < at { out.writeBytes(bytes[field: keptFrom..<at]) }
                keptFrom = end + 2
            }
            at = end + 2
        }
        if keptFrom < last { out.writeBytes(bytes[field: keptFrom..<last]) }
        out.writeStaticString("X-authentik-username: ")
        out.writeString(user)
        out.writeStaticString("\r\n\r\n")
    }

    private enum Kind {
        case user, groups, token, contentLength, connection, unserved, other
    }

    private static func classify(_ n: UnsafeRawBufferPointer) -> Kind {
        switch n.count {
        case 6: return HTTPField.equals(n, lowercase: "expect") ? .unserved : .other
        case 7: return HTTPField.equals(n, lowercase: "upgrade") ? .unserved : .other
        case 10: return HTTPField.equals(n, lowercase: "connection") ? .connection : .other
        case 14:
            if HTTPField.equals(n, lowercase: "content-length") { return .contentLength }
            return HTTPField.equals(n, lowercase: "http2-settings") ? .unserved : .other
        case 15: return HTTPField.equals(n, lowercase: "x-authentik-jwt") ? .token : .other
        case 17:
            return HTTPField.equals(n, lowercase: "transfer-encoding") ? .unserved : .other
        case 18: return HTTPField.equals(n, lowercase: "x-authentik-groups") ? .groups : .other
        case 20: return HTTPField.equals(n, lowercase: "x-authentik-username") ? .user : .other
        default: return .other
        }
    }

    private static func note(_ field: inout ScannedField, _ value: Range<Int>) {
        if field.count == 0 { field.value = value }
        field.count &+= 1
    }

    /// The offset of the CR of the CRLF ending the line at `from`; nil when no LF follows yet; -1 for an LF not
    /// preceded by CR, or a CR not followed by LF.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        let count = bytes.count
        guard from < count, let base = bytes.baseAddress,
            let lf = memchr(base + from, 0x0A, count - from)
        else { return nil }
        let at = base.distance(to: UnsafeRawPointer(lf))
        guard at > from, bytes[at - 1] == 0x0D else { return -1 }
        // A CR elsewhere on the line is refused by the value and request-line checks (not a value character).
        return at - 1
    }

    private struct RequestLine {
        var isHead: Bool
        var idempotent: Bool
    }

    /// `method SP origin-form SP HTTP/1.1` with one of the served methods.
    private static func requestLine(_ line: UnsafeRawBufferPointer) -> RequestLine? {
        guard let sp = line.firstIndex(of: 0x20), sp > 0 else { return nil }
        let method = line[field: 0..<sp]
        let parsed: RequestLine
        switch sp {
        case 3 where memcmp(method.baseAddress!, "GET", 3) == 0: parsed = RequestLine(isHead: false, idempotent: true)
        case 3 where memcmp(method.baseAddress!, "PUT", 3) == 0: parsed = RequestLine(isHead: false, idempotent: true)
        case 4 where memcmp(method.baseAddress!, "HEAD", 4) == 0: parsed = RequestLine(isHead: true, idempotent: true)
        case 4 where memcmp(method.baseAddress!, "POST", 4) == 0:
            parsed = RequestLine(isHead: false, idempotent: false)
        case 5 where memcmp(method.baseAddress!, "PATCH", 5) == 0:
            parsed = RequestLine(isHead: false, idempotent: false)
        case 6 where memcmp(method.baseAddress!, "DELETE", 6) == 0:
            parsed = RequestLine(isHead: false, idempotent: true)
        case 7 where memcmp(method.baseAddress!, "OPTIONS", 7) == 0:
            parsed = RequestLine(isHead: false, idempotent: true)
        default: return nil
        }
        let version = " HTTP/1.1"
        let targetStart = sp + 1
        let targetEnd = line.count - 9
        guard targetEnd > targetStart, line[targetStart] == 0x2F,
            memcmp(line.baseAddress! + targetEnd, version, 9) == 0
        else { return nil }
        for i in targetStart..<targetEnd {
            let c = line[i]
            if c <= 0x20 || c == 0x7F { return nil }
        }
        return parsed
    }

    /// 1 to 18 ASCII digits as a number; nil for anything else.
    private static func decimal(_ v: UnsafeRawBufferPointer) -> Int? {
        guard !v.isEmpty, v.count <= 18 else { return nil }
        var n = 0
        for c in v {
            guard c &- 0x30 < 10 else { return nil }
            n = n &* 10 &+ Int(c &- 0x30)
        }
        return n
    }
}
