import NIOCore

/// A response head read from an upstream, kept as the bytes it came in, with the offsets of its fields.
///
/// Only what framing and hop-by-hop handling need is interpreted (RFC 9112 sections 4-6); everything else is
/// forwarded byte for byte, so no header is turned into a `String` on the way through.
struct UpstreamResponseHead {
    /// One header line: offsets into `bytes`.
    struct Field {
        var name: Range<Int>
        var value: Range<Int>
        /// The whole line, CRLF included.
        var line: Range<Int>
    }

    enum Framing: Equatable {
        /// No body (a response to HEAD, 1xx, 204, 304, or `Content-Length: 0`).
        case none
        case length(Int)
        case chunked
        /// Delimited by the upstream closing the connection (RFC 9112 section 6.3, rule 8).
        case untilClose
    }

    /// The head as received, status line through the empty line.
    let bytes: ByteBuffer
    let minorVersion: Int
    let status: Int
    /// The reason phrase, possibly empty.
    let reason: Range<Int>
    let fields: [Field]
    let framing: Framing
    /// The upstream lets the connection be reused after this response.
    let keepAlive: Bool

    /// True when a field named `lowercase` is present.
    func has(_ lowercase: StaticString) -> Bool {
        fields.contains { ResponseFramer.equalsLowercase(bytes, $0.name, lowercase) }
    }

    /// Writes the head for the client: its HTTP version, the upstream's status and reason, the upstream's fields
    /// without the hop-by-hop ones (RFC 9110 section 7.6.1: `Connection` and the fields it names, `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Upgrade` unless `keepUpgrade`, `Proxy-Authenticate`, `Proxy-Authorization`) and
    /// without `Transfer-Encoding` when `dropTransferEncoding`, then `extra` lines (each `Name: value`).
    func write(
        to out: inout ByteBuffer,
        minorVersion clientMinor: Int,
        keepUpgrade: Bool,
        dropTransferEncoding: Bool,
        extra: [String]
    ) {
        let view = bytes.readableBytesView
        let base = view.startIndex
        out.reserveCapacity(minimumWritableBytes: bytes.readableBytes + 64)
        out.writeStaticString(clientMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(status))
        out.writeStaticString(" ")
        out.writeBytes(view[(base + reason.lowerBound)..<(base + reason.upperBound)])
        out.writeStaticString("\r\n")
        // Fields that `Connection` names are hop-by-hop too; framing fields never are.
        var named: [Range<Int>] = []
        for f in fields where ResponseFramer.equalsLowercase(bytes, f.name, "connection") {
            ResponseFramer.forEachToken(view, f.value) { token in
                if !ResponseFramer.equalsLowercase(bytes, token, "content-length"),
                    !ResponseFramer.equalsLowercase(bytes, token, "transfer-encoding")
                {
                    named.append(token)
                }
            }
        }
        for f in fields {
            if ResponseFramer.isHopByHop(bytes, f.name, keepUpgrade: keepUpgrade) { continue }
            if dropTransferEncoding && ResponseFramer.equalsLowercase(bytes, f.name, "transfer-encoding") { continue }
            if !named.isEmpty && named.contains(where: { ResponseFramer.equalRanges(bytes, $0, f.name) }) { continue }
            out.writeBytes(view[(base + f.line.lowerBound)..<(base + f.line.upperBound)])
        }
        for line in extra {
            out.writeString(line)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
    }
}

/// Why an upstream's response could not be framed; the dispatcher answers 502 (or cuts the connection when the
/// response has started) and never reuses that upstream connection.
struct UpstreamFramingError: Error, CustomStringConvertible {
    var description: String
}

/// Incremental framing of the HTTP/1.1 responses an upstream sends (RFC 9112): where each head ends, how its body
/// is delimited (section 6.3) and where it ends, including chunked transfer coding (section 7.1).
///
/// The body is handed on as it came on the wire (chunk framing included), or, with `dechunk`, as the chunks'
/// data only (for an HTTP/1.0 client). Strict where a lenient reading could let one response swallow or smuggle
/// another: obsolete line folding, bare LF, a field name with a character outside `tchar`, control characters in
/// values, `Content-Length` together with `Transfer-Encoding`, differing `Content-Length` values, any transfer
/// coding but `chunked`, a malformed or oversized chunk size, and data after the response are all errors.
/// Not thread-safe; one per upstream connection.
struct ResponseFramer {
    enum Event {
        /// A 1xx response other than 101 (`100 Continue`, `103 Early Hints`): the final response follows.
        case interim(UpstreamResponseHead)
        /// The final response's head (or a 101, after which the connection carries no more HTTP).
        case head(UpstreamResponseHead)
        case body(ByteBuffer)
        case end
    }

    /// Largest head accepted (NIO's default header limit).
    static let maxHeadBytes = 80 * 1024
    /// Largest chunk-size line (with extensions) accepted.
    static let maxChunkLineBytes = 4096
    /// Largest trailer line accepted (trailers are passed on or dropped as they come, never held whole).
    static let maxTrailerBytes = 16 * 1024

    private enum State {
        /// No request is outstanding: any byte is an error.
        case idle
        case head
        case length(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        /// After a 101: the bytes are the upgraded protocol's, not ours to read.
        case switched
    }

    private var state = State.idle
    private var pending: ByteBuffer?
    private var noBody = false
    private var dechunk = false
    private var headScanFrom = 0
    /// The response's end is framed; `next()` reports it before reading on.
    private var endDue = false

    /// True when bytes were read that no event has taken (after a response's end: bytes nobody asked for).
    var hasUnread: Bool { (pending?.readableBytes ?? 0) > 0 }

    /// True once a 101 was framed; unread bytes stay with `takeUnread`.
    var switched: Bool { if case .switched = state { true } else { false } }

    /// True between a request being sent and its response's end.
    var awaitingResponse: Bool { if case .idle = state { false } else { true } }

    /// True when the response in progress ends when the upstream closes.
    var endsOnClose: Bool { if case .untilClose = state { true } else { false } }

    /// Call before each request is sent upstream.
    /// - Parameters:
    ///   - isHead: the request is HEAD (its response has no body, whatever its fields say).
    ///   - dechunk: hand a chunked body on as its data only.
    mutating func expectResponse(isHead: Bool, dechunk: Bool) {
        state = .head
        endDue = false
        noBody = isHead
        self.dechunk = dechunk
        headScanFrom = 0
    }

    /// Drops every byte read and not yet taken (the connection is being closed).
    mutating func discard() { pending = nil }

    /// Bytes read but not consumed (after a 101, the upgraded protocol's first bytes).
    mutating func takeUnread() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }

    /// Adds bytes read from the upstream; take the events with `next()` until it returns nil.
    mutating func feed(_ incoming: ByteBuffer) {
        if pending == nil || pending!.readableBytes == 0 {
            pending = incoming
        } else {
            var incoming = incoming
            pending!.writeBuffer(&incoming)
        }
    }

    /// The next event the bytes fed so far complete, or nil when more bytes are needed (or after a 101).
    /// - Throws: `UpstreamFramingError` on anything that does not frame; the connection must not be used again.
    mutating func next() throws -> Event? {
        if endDue {
            endDue = false
            state = .idle
            return .end
        }
        while var buf = pending, buf.readableBytes > 0 {
            defer { if pending?.readableBytes == 0 { pending = nil } }
            switch state {
            case .switched:
                return nil
            case .idle:
                throw UpstreamFramingError(
                    description: "the upstream sent \(buf.readableBytes) bytes no request asked for"
                )
            case .head:
                guard let headLength = try findHeadEnd(buf) else {
                    if buf.readableBytes > Self.maxHeadBytes {
                        throw UpstreamFramingError(
                            description: "the upstream's response head is larger than \(Self.maxHeadBytes) bytes"
                        )
                    }
                    return nil
                }
                let headBytes = buf.readSlice(length: headLength)!
                pending = buf
                let head = try Self.parseHead(headBytes, noBody: noBody)
                headScanFrom = 0
                if head.status == 101 {
                    state = .switched
                    return .head(head)
                }
                if head.status >= 100 && head.status < 200 { return .interim(head) }
                switch head.framing {
                case .none: endDue = true
                case .length(let n): state = .length(remaining: n)
                case .chunked: state = .chunkSize
                case .untilClose: state = .untilClose
                }
                return .head(head)
            case .length(let remaining):
                let n = min(remaining, buf.readableBytes)
                let slice = buf.readSlice(length: n)!
                pending = buf
                if n == remaining {
                    endDue = true
                } else {
                    state = .length(remaining: remaining - n)
                }
                return .body(slice)
            case .untilClose:
                pending = nil
                return .body(buf)
            case .chunkSize, .chunkData, .chunkDataEnd, .trailers:
                return try stepChunked(&buf)
            }
        }
        return nil
    }

    /// The upstream closed its side: true when that ends the response in progress (delimited by the close).
    /// - Throws: when a response was in progress and not delimited by the close.
    mutating func upstreamClosed() throws -> Bool {
        switch state {
        case .untilClose:
            state = .idle
            return true
        case .idle, .switched:
            return false
        default:
            throw UpstreamFramingError(description: "the upstream closed the connection in the middle of a response")
        }
    }

    /// Consumes as much chunked framing as `buf` holds. Pass-through: one raw slice of it; de-chunking: the next
    /// piece of chunk data. Sets `endDue` when the last chunk's trailers ended.
    private mutating func stepChunked(_ buf: inout ByteBuffer) throws -> Event? {
        let before = buf  // shares storage; slices of what was consumed are taken from it
        let rawStart = buf.readerIndex
        var data: ByteBuffer?
        loop: while buf.readableBytes > 0 {
            switch state {
            case .chunkSize:
                guard let lineLength = Self.lineLength(buf, limit: Self.maxChunkLineBytes) else {
                    if buf.readableBytes > Self.maxChunkLineBytes {
                        throw UpstreamFramingError(description: "the upstream's chunk-size line is too long")
                    }
                    break loop
                }
                let size = try Self.parseChunkSize(buf.readableBytesView.prefix(lineLength - 1))
                buf.moveReaderIndex(forwardBy: lineLength)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, buf.readableBytes)
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
                if dechunk {
                    data = buf.readSlice(length: n)!
                    break loop
                }
                buf.moveReaderIndex(forwardBy: n)
            case .chunkDataEnd:
                guard buf.readableBytes >= 2 else { break loop }
                guard buf.readableBytesView.prefix(2).elementsEqual([13, 10]) else {
                    throw UpstreamFramingError(description: "the upstream's chunk data is not followed by CRLF")
                }
                buf.moveReaderIndex(forwardBy: 2)
                state = .chunkSize
            case .trailers:
                guard let lineLength = Self.lineLength(buf, limit: Self.maxTrailerBytes) else {
                    if buf.readableBytes > Self.maxTrailerBytes {
                        throw UpstreamFramingError(description: "the upstream's trailer line is too long")
                    }
                    break loop
                }
                guard lineLength >= 2, buf.readableBytesView[buf.readerIndex + lineLength - 2] == 13 else {
                    throw UpstreamFramingError(description: "the upstream's trailer section has a bare LF")
                }
                if lineLength > 2 { try Self.checkFieldLine(buf.readableBytesView.prefix(lineLength - 2)) }
                buf.moveReaderIndex(forwardBy: lineLength)
                if lineLength == 2 {
                    endDue = true
                    break loop
                }
            default:
                break loop
            }
        }
        let raw =
            !dechunk && buf.readerIndex > rawStart
            ? before.getSlice(at: rawStart, length: buf.readerIndex - rawStart) : nil
        if buf.readableBytes > 0 && !endDue && data == nil {
            // An incomplete line: keep it (copied, so the rest of the read buffer can be released).
            var copy = ByteBufferAllocator().buffer(capacity: buf.readableBytes)
            copy.writeImmutableBuffer(buf)
            pending = copy
        } else {
            pending = buf
        }
        if let data { return .body(data) }
        if let raw { return .body(raw) }
        if endDue {
            endDue = false
            state = .idle
            return .end
        }
        return nil
    }

    /// Length of the head including the empty line, or nil when `\r\n\r\n` has not arrived.
    /// - Throws: on a LF without its CR (a bare-LF head would otherwise wait for an end that never comes).
    private mutating func findHeadEnd(_ buf: ByteBuffer) throws -> Int? {
        let view = buf.readableBytesView
        let count = view.count
        var i = headScanFrom
        let found: Int? = try view.withUnsafeBytes { p -> Int? in
            while i < count {
                if p[i] == 10 {
                    guard i > 0, p[i - 1] == 13 else {
                        throw UpstreamFramingError(description: "the upstream's response head has a bare LF")
                    }
                    if i >= 3, p[i - 2] == 10, p[i - 3] == 13 { return i + 1 }
                }
                i += 1
            }
            return nil
        }
        headScanFrom = count
        if let found, found > Self.maxHeadBytes {
            throw UpstreamFramingError(
                description: "the upstream's response head is larger than \(Self.maxHeadBytes) bytes"
            )
        }
        return found
    }

    /// Length of the line at the start of `buf` including its CRLF, or nil when no LF came within `limit` bytes.
    private static func lineLength(_ buf: ByteBuffer, limit: Int) -> Int? {
        let view = buf.readableBytesView
        guard let lf = view.prefix(limit).firstIndex(of: 10) else { return nil }
        return lf - view.startIndex + 1
    }

    /// `chunk-size [chunk-ext]` (RFC 9112 section 7.1.1): hex digits, then optionally `;` extensions (printable,
    /// no control characters), with optional whitespace before the `;`. `line` ends before the LF; a bare LF
    /// shows as a missing CR here.
    static func parseChunkSize(_ line: ByteBufferView) throws -> Int {
        guard line.last == 13 else {
            throw UpstreamFramingError(description: "the upstream's chunk-size line ends in a bare LF")
        }
        var size = 0
        var digits = 0
        var i = line.startIndex
        let end = line.endIndex - 1
        while i < end, let d = hexValue(line[i]) {
            guard digits < 15 else { throw UpstreamFramingError(description: "the upstream's chunk size is too large") }
            size = size << 4 | d
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw UpstreamFramingError(description: "the upstream's chunk-size line has no size") }
        while i < end, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
        if i < end {
            guard line[i] == 0x3B else {
                throw UpstreamFramingError(description: "the upstream's chunk-size line has stray characters")
            }
            while i < end {
                let c = line[i]
                guard c == 0x09 || (c >= 0x20 && c != 0x7F) else {
                    throw UpstreamFramingError(description: "the upstream's chunk extension has a control character")
                }
                i += 1
            }
        }
        return size
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: Int(c - 0x30)
        case 0x41...0x46: Int(c - 0x41 + 10)
        case 0x61...0x66: Int(c - 0x61 + 10)
        default: nil
        }
    }

    /// `tchar` (RFC 9110 section 5.6.2).
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// A field line without its CRLF: `name ":" OWS value OWS`; returns the name's and value's ranges relative to
    /// the line's start.
    @discardableResult
    static func checkFieldLine(_ line: ByteBufferView) throws -> (name: Range<Int>, value: Range<Int>) {
        let s = line.startIndex
        var i = s
        while i < line.endIndex, isTokenChar(line[i]) { i += 1 }
        guard i > s else {
            throw UpstreamFramingError(
                description: line.first == 0x20 || line.first == 0x09
                    ? "the upstream folded a header line (obsolete line folding)"
                    : "the upstream sent a header line without a name"
            )
        }
        guard i < line.endIndex, line[i] == 0x3A else {
            throw UpstreamFramingError(description: "the upstream sent a header name with an invalid character")
        }
        let nameRange = 0..<(i - s)
        i += 1
        while i < line.endIndex, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
        var e = line.endIndex
        while e > i, line[e - 1] == 0x20 || line[e - 1] == 0x09 { e -= 1 }
        var j = i
        while j < e {
            let c = line[j]
            guard c == 0x09 || (c >= 0x20 && c != 0x7F) else {
                throw UpstreamFramingError(description: "the upstream sent a header value with a control character")
            }
            j += 1
        }
        return (nameRange, (i - s)..<(e - s))
    }

    /// Parses and checks a complete head (ending in the empty line) and decides its framing.
    static func parseHead(_ bytes: ByteBuffer, noBody: Bool) throws -> UpstreamResponseHead {
        let view = bytes.readableBytesView
        let base = view.startIndex
        var lines: [Range<Int>] = []  // relative, without CRLF
        var start = 0
        var i = 0
        let count = view.count
        while i < count {
            if view[base + i] == 10 {
                guard i > start, view[base + i - 1] == 13 else {
                    throw UpstreamFramingError(description: "the upstream's response head has a bare LF")
                }
                lines.append(start..<(i - 1))
                start = i + 1
            }
            i += 1
        }
        guard let statusLine = lines.first, lines.last?.isEmpty == true else {
            throw UpstreamFramingError(description: "the upstream's response head is incomplete")
        }
        // status-line = HTTP-version SP status-code SP [reason-phrase]
        let sl = view[(base + statusLine.lowerBound)..<(base + statusLine.upperBound)]
        let prefix: [UInt8] = Array("HTTP/1.".utf8)
        guard sl.count >= 12, sl.prefix(7).elementsEqual(prefix),
            sl[sl.startIndex + 7] == 0x30 || sl[sl.startIndex + 7] == 0x31, sl[sl.startIndex + 8] == 0x20
        else {
            throw UpstreamFramingError(
                description: "the upstream did not answer with an HTTP/1.0 or HTTP/1.1 status line"
            )
        }
        let minor = Int(sl[sl.startIndex + 7] - 0x30)
        var status = 0
        for k in 9..<12 {
            let c = sl[sl.startIndex + k]
            guard c >= 0x30 && c <= 0x39 else {
                throw UpstreamFramingError(description: "the upstream's status code is not three digits")
            }
            status = status * 10 + Int(c - 0x30)
        }
        guard status >= 100 else {
            throw UpstreamFramingError(description: "the upstream's status code \(status) is out of range")
        }
        var reason = (statusLine.lowerBound + 12)..<(statusLine.lowerBound + 12)
        if sl.count > 12 {
            guard sl[sl.startIndex + 12] == 0x20 else {
                throw UpstreamFramingError(description: "the upstream's status code is not three digits")
            }
            reason = (statusLine.lowerBound + 13)..<statusLine.upperBound
            for c in sl.dropFirst(13) where !(c == 0x09 || (c >= 0x20 && c != 0x7F)) {
                throw UpstreamFramingError(description: "the upstream's reason phrase has a control character")
            }
        }
        var fields: [UpstreamResponseHead.Field] = []
        fields.reserveCapacity(lines.count - 2)
        for line in lines.dropFirst().dropLast() {
            let (n, v) = try checkFieldLine(view[(base + line.lowerBound)..<(base + line.upperBound)])
            fields.append(
                .init(
                    name: (line.lowerBound + n.lowerBound)..<(line.lowerBound + n.upperBound),
                    value: (line.lowerBound + v.lowerBound)..<(line.lowerBound + v.upperBound),
                    line: line.lowerBound..<(line.upperBound + 2)
                )
            )
        }

        // Framing (RFC 9112 section 6.3) and persistence (section 9.3).
        var length: Int?
        var chunked = false
        var close = false
        var keepAliveToken = false
        for f in fields {
            if equalsLowercase(bytes, f.name, "content-length") {
                var sawToken = false
                var failure: String?
                forEachToken(view, f.value) { token in
                    sawToken = true
                    guard failure == nil else { return }
                    guard token.count <= 15, token.allSatisfy({ view[base + $0] >= 0x30 && view[base + $0] <= 0x39 })
                    else {
                        failure = "the upstream's Content-Length is not a number"
                        return
                    }
                    let n = token.reduce(0) { $0 * 10 + Int(view[base + $1] - 0x30) }
                    if let l = length, l != n { failure = "the upstream sent differing Content-Length values" }
                    length = n
                }
                if let failure { throw UpstreamFramingError(description: failure) }
                guard sawToken else {
                    throw UpstreamFramingError(description: "the upstream's Content-Length is empty")
                }
            } else if equalsLowercase(bytes, f.name, "transfer-encoding") {
                guard !chunked, equalsLowercase(bytes, f.value, "chunked") else {
                    throw UpstreamFramingError(
                        description: "the upstream used a transfer coding other than a single chunked"
                    )
                }
                chunked = true
            } else if equalsLowercase(bytes, f.name, "connection") {
                forEachToken(view, f.value) { token in
                    if equalsLowercase(bytes, token, "close") { close = true }
                    if equalsLowercase(bytes, token, "keep-alive") { keepAliveToken = true }
                }
            }
        }
        if chunked && length != nil {
            throw UpstreamFramingError(description: "the upstream sent both Transfer-Encoding and Content-Length")
        }
        let framing: UpstreamResponseHead.Framing
        if noBody || status < 200 || status == 204 || status == 304 {
            framing = .none
        } else if chunked {
            framing = .chunked
        } else if let length {
            framing = length == 0 ? .none : .length(length)
        } else {
            framing = .untilClose
        }
        let keepAlive = framing != .untilClose && !close && (minor == 1 || keepAliveToken)
        return UpstreamResponseHead(
            bytes: bytes,
            minorVersion: minor,
            status: status,
            reason: reason,
            fields: fields,
            framing: framing,
            keepAlive: keepAlive
        )
    }

    // MARK: bytes

    @inline(__always) private static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    /// The bytes at `range` of `buf` equal `lowercase` ignoring ASCII case.
    static func equalsLowercase(_ buf: ByteBuffer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        let view = buf.readableBytesView
        let base = view.startIndex
        let b = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for k in 0..<range.count where lower(view[base + range.lowerBound + k]) != b[k] { return false }
        return true
    }

    /// The bytes at two ranges of `buf` are equal ignoring ASCII case.
    static func equalRanges(_ buf: ByteBuffer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        let view = buf.readableBytesView
        let base = view.startIndex
        for k in 0..<a.count where lower(view[base + a.lowerBound + k]) != lower(view[base + b.lowerBound + k]) {
            return false
        }
        return true
    }

    /// Calls `body` with each comma-separated token of the value at `range` (whitespace trimmed, empty skipped).
    static func forEachToken(_ view: ByteBufferView, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        let base = view.startIndex
        var s = range.lowerBound
        while s <= range.upperBound {
            var e = s
            while e < range.upperBound, view[base + e] != 0x2C { e += 1 }
            var a = s
            var b = e
            while a < b, view[base + a] == 0x20 || view[base + a] == 0x09 { a += 1 }
            while b > a, view[base + b - 1] == 0x20 || view[base + b - 1] == 0x09 { b -= 1 }
            if a < b { body(a..<b) }
            s = e + 1
        }
    }

    /// The fields that are hop-by-hop whatever `Connection` says (RFC 9110 section 7.6.1).
    static func isHopByHop(_ buf: ByteBuffer, _ name: Range<Int>, keepUpgrade: Bool) -> Bool {
        switch name.count {
        case 2: equalsLowercase(buf, name, "te")
        case 7: !keepUpgrade && equalsLowercase(buf, name, "upgrade")
        case 10: equalsLowercase(buf, name, "connection") || equalsLowercase(buf, name, "keep-alive")
        case 16: equalsLowercase(buf, name, "proxy-connection")
        case 18: equalsLowercase(buf, name, "proxy-authenticate")
        case 19: equalsLowercase(buf, name, "proxy-authorization")
        default: false
        }
    }
}
