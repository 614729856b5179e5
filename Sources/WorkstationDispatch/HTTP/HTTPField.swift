/// Field names and values as bytes, for the request gate (`Gate`, on NIO's decoded `String`s) and the response
/// framer (`ResponseFramer`, on the bytes received): one definition of the hop-by-hop fields, of ASCII
/// case-insensitive name comparison and of comma-separated tokens (RFC 9110 sections 5.1, 5.6 and 7.6.1).
///
/// Everything works on raw bytes (`UnsafeRawBufferPointer`): a slice of a received buffer as it is, a `String`
/// through `bytes(of:_:)` (its UTF-8 storage, not copied), so that neither side converts one into the other.
enum HTTPField {
    /// `c` lowercased if it is an ASCII capital letter.
    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    /// Calls `body` with the UTF-8 bytes of `s` (its own storage when contiguous, as native strings are).
    @inline(__always)
    static func bytes<R>(of s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        var copy = s
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// `bytes` equal `lowercase` (already lowercase ASCII) ignoring ASCII case.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard bytes.count == n else { return false }
        let b = lowercase.utf8Start
        var i = 0
        while i < n {
            if lower(bytes[i]) != b[i] { return false }
            i &+= 1
        }
        return true
    }

    /// `bytes` start with `lowercase` (already lowercase ASCII) ignoring ASCII case.
    @inline(__always)
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard bytes.count >= n else { return false }
        return equals(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), lowercase: lowercase)
    }

    /// `a` equals `b` ignoring ASCII case.
    static func equalIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i < a.count {
            if lower(a[i]) != lower(b[i]) { return false }
            i &+= 1
        }
        return true
    }

    /// True for the fields that are hop-by-hop whether or not `Connection` names them (RFC 9110 section 7.6.1):
    /// `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Upgrade` (unless `keepUpgrade`: a WebSocket
    /// handshake's), `Proxy-Authenticate`, `Proxy-Authorization`.
    static func isHopByHop(_ name: UnsafeRawBufferPointer, keepUpgrade: Bool = false) -> Bool {
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
    static func isFraming(_ name: UnsafeRawBufferPointer) -> Bool {
        equals(name, lowercase: "content-length") || equals(name, lowercase: "transfer-encoding")
    }

    /// `bytes` without leading and trailing optional whitespace (space, horizontal tab; RFC 9110 section 5.6.3).
    static func trimmingOWS(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lo = 0
        var hi = bytes.count
        while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo &+= 1 }
        while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 { hi &-= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[lo..<hi])
    }

    /// Calls `body` with each element of a comma-separated list (RFC 9110 section 5.6.1), whitespace trimmed,
    /// empty elements skipped.
    static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        let count = value.count
        while start <= count {
            var end = start
            while end < count, value[end] != 0x2C { end &+= 1 }
            let token = trimmingOWS(UnsafeRawBufferPointer(rebasing: value[start..<end]))
            if !token.isEmpty { body(token) }
            start = end &+ 1
        }
    }

    /// True when the comma-separated list `value` has the element `lowercase`, ignoring ASCII case.
    static func listContains(_ value: UnsafeRawBufferPointer, lowercase: StaticString) -> Bool {
        var found = false
        forEachToken(value) { if !found, equals($0, lowercase: lowercase) { found = true } }
        return found
    }

    /// `tchar` (RFC 9110 section 5.6.2): the characters of a field name or token. (A 128-bit mask of the tchar
    /// code points, `tcharLow` for 0-63 and `tcharHigh` for 64-127: one shift per byte, no table in memory.)
    @inline(__always) static func isTokenChar(_ c: UInt8) -> Bool {
        c < 64 ? (tcharLow >> UInt64(c)) & 1 != 0 : c < 128 && (tcharHigh >> UInt64(c &- 64)) & 1 != 0
    }

    /// ``!#$%&'*+-.`` and digits.
    private static var tcharLow: UInt64 { 0x03FF_6CFA_0000_0000 }
    /// Letters and ``^_`|~``.
    private static var tcharHigh: UInt64 { 0x57FF_FFFF_C7FF_FFFE }

    /// A character allowed in a field value, reason phrase or chunk extension: horizontal tab, visible ASCII,
    /// space, or obs-text (RFC 9110 section 5.5); no other control character and no DEL.
    @inline(__always) static func isValueChar(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }

    /// True when every byte is `isValueChar`. Eight bytes at a time: a word with no byte below 0x20 and
    /// none equal to 0x7F passes whole (the usual case, a long token included); one that has such a byte is checked
    /// byte by byte, since tab is allowed.
    static func allValueChars(_ v: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        let count = v.count
        while i &+ 8 <= count {
            let w = v.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            // A byte below 0x20 (obs-text, 0x80 and up, has its high bit set and is not flagged) ...
            let low = (w &- ones &* 0x20) & ~w & highs
            // ... or a byte equal to 0x7F (a zero byte in w XOR 0x7F7F...).
            let x = w ^ (ones &* 0x7F)
            let del = (x &- ones) & ~x & highs
            if low | del != 0 {
                for j in i..<(i &+ 8) where !isValueChar(v[j]) { return false }
            }
            i &+= 8
        }
        while i < count {
            if !isValueChar(v[i]) { return false }
            i &+= 1
        }
        return true
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes at `range`, as a buffer of their own (offsets relative to this buffer's start).
    @inline(__always) subscript(field range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[range])
    }
}
