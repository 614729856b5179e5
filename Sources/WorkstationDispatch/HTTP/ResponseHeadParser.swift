import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The strict parsing behind `ResponseFramer`: status line, field lines, framing and chunk-size lines (RFC 9112
/// sections 4, 5, 6.3 and 7.1). Every function throws `UpstreamFramingError` on what a lenient parser would accept
/// and another could read differently.
extension ResponseFramer {
    /// `chunk-size [chunk-ext]` (RFC 9112 section 7.1.1): hex digits, then optionally `;` extensions (printable,
    /// no control characters), with optional whitespace before the `;`. `line` ends before the LF; a bare LF
    /// shows as a missing CR here.
    static func parseChunkSize(_ line: UnsafeRawBufferPointer) throws -> Int {
        guard line.last == 13 else {
            throw UpstreamFramingError(description: "the upstream's chunk-size line ends in a bare LF")
        }
        var size = 0
        var digits = 0
        var i = 0
        let end = line.count - 1
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
                guard HTTPField.isValueChar(line[i]) else {
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

    /// A field line without its CRLF: `name ":" OWS value OWS`; returns the name's and value's ranges relative to
    /// the line's start.
    @discardableResult
    static func checkFieldLine(_ line: UnsafeRawBufferPointer) throws -> (name: Range<Int>, value: Range<Int>) {
        let s = 0
        let endIndex = line.count
        var i = s
        while i < endIndex, HTTPField.isTokenChar(line[i]) { i &+= 1 }
        guard i > s else {
            throw UpstreamFramingError(
                description: line.first == 0x20 || line.first == 0x09
                    ? "the upstream folded a header line (obsolete line folding)"
                    : "the upstream sent a header line without a name"
            )
        }
        guard i < endIndex, line[i] == 0x3A else {
            throw UpstreamFramingError(description: "the upstream sent a header name with an invalid character")
        }
        let nameRange = 0..<(i - s)
        i += 1
        while i < endIndex, line[i] == 0x20 || line[i] == 0x09 { i &+= 1 }
        var e = endIndex
        while e > i, line[e - 1] == 0x20 || line[e - 1] == 0x09 { e -= 1 }
        guard HTTPField.allValueChars(line[field: i..<e]) else {
            throw UpstreamFramingError(description: "the upstream sent a header value with a control character")
        }
        return (nameRange, (i - s)..<(e - s))
    }

    /// Parses and checks a complete head (ending in the empty line) and decides its framing.
    static func parseHead(_ bytes: ByteBuffer, noBody: Bool) throws -> UpstreamResponseHead {
        try bytes.withUnsafeReadableBytes { try parseHead(bytes, $0, noBody: noBody) }
    }

    /// `parseHead` on `view`, the readable bytes of `bytes`; offsets are relative to their first byte.
    private static func parseHead(
        _ bytes: ByteBuffer,
        _ view: UnsafeRawBufferPointer,
        noBody: Bool
    ) throws -> UpstreamResponseHead {
        // Lines without CRLF, taken one after the other (no list of lines is built): the status line, the field
        // lines, the empty line.
        let count = view.count
        var start = 0
        func nextLine(from start: Int) throws -> Range<Int>? {
            guard start < count, let base = view.baseAddress,
                let lf = memchr(base + start, 10, count - start)
            else { return nil }
            let i = base.distance(to: UnsafeRawPointer(lf))
            guard i > start, view[i - 1] == 13 else {
                throw UpstreamFramingError(description: "the upstream's response head has a bare LF")
            }
            return start..<(i - 1)
        }
        guard let statusLine = try nextLine(from: 0) else {
            throw UpstreamFramingError(description: "the upstream's response head is incomplete")
        }
        start = statusLine.upperBound + 2
        // status-line = HTTP-version SP status-code SP [reason-phrase]
        let sl = view[statusLine]
        let b = statusLine.lowerBound
        guard sl.count >= 12, memcmp(view.baseAddress! + b, "HTTP/1.", 7) == 0,
            view[b + 7] == 0x30 || view[b + 7] == 0x31, view[b + 8] == 0x20
        else {
            throw UpstreamFramingError(
                description: "the upstream did not answer with an HTTP/1.0 or HTTP/1.1 status line"
            )
        }
        let minor = Int(view[b + 7] - 0x30)
        var status = 0
        for k in 9..<12 {
            let c = view[b + k]
            guard c >= 0x30 && c <= 0x39 else {
                throw UpstreamFramingError(description: "the upstream's status code is not three digits")
            }
            status = status * 10 + Int(c - 0x30)
        }
        guard status >= 100 else {
            throw UpstreamFramingError(description: "the upstream's status code \(status) is out of range")
        }
        var reason = (b + 12)..<(b + 12)
        if sl.count > 12 {
            guard view[b + 12] == 0x20 else {
                throw UpstreamFramingError(description: "the upstream's status code is not three digits")
            }
            reason = (b + 13)..<statusLine.upperBound
            for c in view[reason] where !HTTPField.isValueChar(c) {
                throw UpstreamFramingError(description: "the upstream's reason phrase has a control character")
            }
        }

        var fields: [UpstreamResponseHead.Field] = []
        fields.reserveCapacity(16)
        var ended = false
        while let line = try nextLine(from: start) {
            start = line.upperBound + 2
            if line.isEmpty {
                ended = true
                break
            }
            let (n, v) = try checkFieldLine(view[field: line])
            fields.append(
                .init(
                    name: (line.lowerBound + n.lowerBound)..<(line.lowerBound + n.upperBound),
                    value: (line.lowerBound + v.lowerBound)..<(line.lowerBound + v.upperBound),
                    line: line.lowerBound..<(line.upperBound + 2)
                )
            )
        }
        guard ended, start == count else {
            throw UpstreamFramingError(description: "the upstream's response head is incomplete")
        }

        // Framing (RFC 9112 section 6.3) and persistence (section 9.3).
        var length: Int?
        var chunked = false
        var close = false
        var keepAliveToken = false
        for field in fields {
            let name = view[field: field.name]
            let value = view[field: field.value]
            if HTTPField.equals(name, lowercase: "content-length") {
                var sawToken = false
                var failure: String?
                HTTPField.forEachToken(value) { token in
                    sawToken = true
                    guard failure == nil else { return }
                    guard token.count <= 15, token.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        failure = "the upstream's Content-Length is not a number"
                        return
                    }
                    let n = token.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                    if let l = length, l != n { failure = "the upstream sent differing Content-Length values" }
                    length = n
                }
                if let failure { throw UpstreamFramingError(description: failure) }
                guard sawToken else {
                    throw UpstreamFramingError(description: "the upstream's Content-Length is empty")
                }
            } else if HTTPField.equals(name, lowercase: "transfer-encoding") {
                guard !chunked, HTTPField.equals(value, lowercase: "chunked") else {
                    throw UpstreamFramingError(
                        description: "the upstream used a transfer coding other than a single chunked"
                    )
                }
                chunked = true
            } else if HTTPField.equals(name, lowercase: "connection") {
                HTTPField.forEachToken(value) { token in
                    if HTTPField.equals(token, lowercase: "close") { close = true }
                    if HTTPField.equals(token, lowercase: "keep-alive") { keepAliveToken = true }
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
}
