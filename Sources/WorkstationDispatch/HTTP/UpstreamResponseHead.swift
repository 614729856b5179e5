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

    /// How the head is rewritten for the client (`write(to:_:)`).
    struct Rewrite: Equatable {
        /// `Connection` field added at the end of the head.
        enum Connection: Equatable {
            case close
            case keepAlive
            /// `Connection: Upgrade`, with the upstream's `Upgrade` field kept (a WebSocket handshake's 101).
            case upgrade
        }
        /// The client's HTTP minor version (0 or 1); the status line says `HTTP/1.<minorVersion>`.
        var minorVersion = 1
        /// Drop `Transfer-Encoding` (the body is handed on de-chunked).
        var dropTransferEncoding = false
        /// Add `Content-Length: 0` (a HEAD response that declares no length: the client must not wait for a body).
        var contentLengthZero = false
        var connection: Connection?
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
        bytes.withUnsafeReadableBytes { p in
            fields.contains { HTTPField.equals(p[field: $0.name], lowercase: lowercase) }
        }
    }

    /// Writes the head for the client: its HTTP version, the upstream's status and reason, the upstream's fields
    /// without the hop-by-hop ones (RFC 9110 section 7.6.1: `Connection` and the fields it names, `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Upgrade` unless the rewrite keeps it, `Proxy-Authenticate`,
    /// `Proxy-Authorization`) and without `Transfer-Encoding` when the rewrite drops it, then the rewrite's
    /// `Content-Length: 0` and `Connection` fields.
    func write(to out: inout ByteBuffer, _ rewrite: Rewrite) {
        out.reserveCapacity(minimumWritableBytes: bytes.readableBytes + 64)
        writeStatusAndFields(
            to: &out,
            minorVersion: rewrite.minorVersion,
            keepUpgrade: rewrite.connection == .upgrade,
            dropTransferEncoding: rewrite.dropTransferEncoding
        )
        if rewrite.contentLengthZero { out.writeStaticString("Content-Length: 0\r\n") }
        switch rewrite.connection {
        case .close: out.writeStaticString("Connection: close\r\n")
        case .keepAlive: out.writeStaticString("Connection: keep-alive\r\n")
        case .upgrade: out.writeStaticString("Connection: Upgrade\r\n")
        case nil: break
        }
        out.writeStaticString("\r\n")
    }

    /// `write(to:_:)` with the hop-by-hop choices spelled out and `extra` lines (each `Name: value`) at the end.
    func write(
        to out: inout ByteBuffer,
        minorVersion clientMinor: Int,
        keepUpgrade: Bool,
        dropTransferEncoding: Bool,
        extra: [String]
    ) {
        out.reserveCapacity(minimumWritableBytes: bytes.readableBytes + 64)
        writeStatusAndFields(
            to: &out,
            minorVersion: clientMinor,
            keepUpgrade: keepUpgrade,
            dropTransferEncoding: dropTransferEncoding
        )
        for line in extra {
            out.writeString(line)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
    }

    private func writeStatusAndFields(
        to out: inout ByteBuffer,
        minorVersion clientMinor: Int,
        keepUpgrade: Bool,
        dropTransferEncoding: Bool
    ) {
        bytes.withUnsafeReadableBytes { p in
            out.writeStaticString(clientMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.writeString(String(status))
            out.writeStaticString(" ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[reason]))
            out.writeStaticString("\r\n")
            // Fields that `Connection` names are hop-by-hop too; framing fields never are.
            var named: [Range<Int>] = []
            for f in fields where HTTPField.equals(p[field: f.name], lowercase: "connection") {
                HTTPField.forEachToken(p[field: f.value]) { token in
                    if !HTTPField.isFraming(token) {
                        let start = p.baseAddress!.distance(to: token.baseAddress!)
                        named.append(start..<(start + token.count))
                    }
                }
            }
            for f in fields {
                let name = p[field: f.name]
                if HTTPField.isHopByHop(name, keepUpgrade: keepUpgrade) { continue }
                if dropTransferEncoding && HTTPField.equals(name, lowercase: "transfer-encoding") { continue }
                if !named.isEmpty && named.contains(where: { HTTPField.equalIgnoringCase(p[field: $0], name) }) {
                    continue
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.line]))
            }
        }
    }
}

/// Why an upstream's response could not be framed; the dispatcher answers 502 (or cuts the connection when the
/// response has started) and never reuses that upstream connection.
struct UpstreamFramingError: Error, CustomStringConvertible {
    var description: String
}
