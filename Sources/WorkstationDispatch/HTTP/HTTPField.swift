/// Field names and values as bytes, for the request gate (`Gate`, on NIO's decoded `String`s) and the response
/// framer (`ResponseFramer`, on slices of the bytes received): one definition of the hop-by-hop fields, of ASCII
/// case-insensitive name comparison and of comma-separated tokens (RFC 9110 sections 5.1, 5.6 and 7.6.1).
///
/// Generic over any collection of `UInt8`: a `String`'s UTF-8 view, or a slice of an `UnsafeRawBufferPointer` over
/// a received buffer, so that neither side converts one into the other.
enum HTTPField {
    /// `c` lowercased if it is an ASCII capital letter.
    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    /// `bytes` equal `lowercase` (already lowercase ASCII) ignoring ASCII case.
    @inline(__always)
    static func equals<C: Collection>(_ bytes: C, lowercase: StaticString) -> Bool where C.Element == UInt8 {
        let b = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return bytes.count == b.count && bytes.elementsEqual(b) { lower($0) == $1 }
    }

    /// `bytes` start with `lowercase` (already lowercase ASCII) ignoring ASCII case.
    static func hasPrefix<C: Collection>(_ bytes: C, lowercase: StaticString) -> Bool where C.Element == UInt8 {
        let b = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return bytes.count >= b.count && bytes.prefix(b.count).elementsEqual(b) { lower($0) == $1 }
    }

    /// `a` equals `b` ignoring ASCII case.
    static func equalIgnoringCase<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        a.count == b.count && a.elementsEqual(b) { lower($0) == lower($1) }
    }

    /// True for the fields that are hop-by-hop whether or not `Connection` names them (RFC 9110 section 7.6.1):
    /// `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Upgrade` (unless `keepUpgrade`: a WebSocket
    /// handshake's), `Proxy-Authenticate`, `Proxy-Authorization`.
    static func isHopByHop<C: Collection>(_ name: C, keepUpgrade: Bool = false) -> Bool where C.Element == UInt8 {
        switch name.count {
        case 2: equals(name, lowercase: "te")
        case 7: !keepUpgrade && equals(name, lowercase: "upgrade")
        case 10: equals(name, lowercase: "connection") || equals(name, lowercase: "keep-alive")
        case 16: equals(name, lowercase: "proxy-connection")
        case 18: equals(name, lowercase: "proxy-authenticate")
        case 19: equals(name, lowercase: "proxy-authorization")
        default: false
        }
    }

    /// True for the fields that frame a message (`Content-Length`, `Transfer-Encoding`): never dropped because
    /// `Connection` names them, since the body is framed the same way on the next hop.
    static func isFraming<C: Collection>(_ name: C) -> Bool where C.Element == UInt8 {
        equals(name, lowercase: "content-length") || equals(name, lowercase: "transfer-encoding")
    }

    /// `bytes` without leading and trailing optional whitespace (space, horizontal tab; RFC 9110 section 5.6.3).
    static func trimmingOWS<C: BidirectionalCollection>(_ bytes: C) -> C.SubSequence where C.Element == UInt8 {
        var lo = bytes.startIndex
        var hi = bytes.endIndex
        while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo = bytes.index(after: lo) }
        while lo < hi {
            let p = bytes.index(before: hi)
            guard bytes[p] == 0x20 || bytes[p] == 0x09 else { break }
            hi = p
        }
        return bytes[lo..<hi]
    }

    /// Calls `body` with each element of a comma-separated list (RFC 9110 section 5.6.1), whitespace trimmed,
    /// empty elements skipped.
    static func forEachToken<C: BidirectionalCollection>(_ value: C, _ body: (C.SubSequence) -> Void)
    where C.Element == UInt8 {
        var start = value.startIndex
        while true {
            let end = value[start...].firstIndex(of: 0x2C) ?? value.endIndex
            let token = trimmingOWS(value[start..<end])
            if !token.isEmpty { body(token) }
            guard end < value.endIndex else { return }
            start = value.index(after: end)
        }
    }

    /// True when the comma-separated list `value` has the element `lowercase`, ignoring ASCII case.
    static func listContains<C: BidirectionalCollection>(_ value: C, lowercase: StaticString) -> Bool
    where C.Element == UInt8 {
        var found = false
        forEachToken(value) { if !found, equals($0, lowercase: lowercase) { found = true } }
        return found
    }

    /// `tchar` (RFC 9110 section 5.6.2): the characters of a field name or token.
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// A character allowed in a field value, reason phrase or chunk extension: horizontal tab, visible ASCII,
    /// space, or obs-text (RFC 9110 section 5.5); no other control character and no DEL.
    @inline(__always) static func isValueChar(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }
}
