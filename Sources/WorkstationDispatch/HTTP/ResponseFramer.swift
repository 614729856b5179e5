import NIOCore

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
                let size = try buf.withUnsafeReadableBytes { try Self.parseChunkSize($0[field: 0..<(lineLength - 1)]) }
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
                if lineLength > 2 {
                    try buf.withUnsafeReadableBytes { _ = try Self.checkFieldLine($0[field: 0..<(lineLength - 2)]) }
                }
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
}
