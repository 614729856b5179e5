import Foundation

/// A path on the host, compared as the kernel compares it: by its bytes (UTF-8 here), never by Unicode canonical
/// equivalence as `String` compares (an NFC and an NFD spelling of one name are two files, so two paths). Every
/// operation that finds a slash, cuts, joins or compares a path lives here, on bytes: the planner, the observer
/// and the path table use these, so they cannot disagree (`path_resolution(7)`: a path is a byte string split at
/// '/'). The free functions below (`joinPath`, `pathRest`, `isDirectChild`, `withoutTrailingSlash`) are the same
/// operations for callers that hold `String`s.
public struct HostPath: Hashable, Sendable, CustomStringConvertible {
    public let string: String

    public init(_ string: String) { self.string = string }

    public var description: String { string }

    /// Equal when the bytes are equal (`memcmp`).
    public static func == (a: HostPath, b: HostPath) -> Bool { sameBytes(a.string, b.string) }

    /// Hashes the bytes, so equal bytes hash alike and canonically-equivalent spellings need not.
    public func hash(into hasher: inout Hasher) {
        Self.withBytes(of: string) { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// `self` joined with `rest` by exactly one '/' (a leading '/' of `rest` is dropped).
    public func appending(_ rest: String) -> HostPath { HostPath(joinPath(string, rest)) }

    /// The rest after `prefix`'s bytes, or nil when the path does not begin with them (`pathRest`).
    public func rest(after prefix: String) -> Substring? { pathRest(string, after: prefix) }

    /// True when the path is `parent/NAME` for one plain NAME (not `.` or `..`).
    public func isDirectChild(of parent: HostPath) -> Bool { WorkstationCore.isDirectChild(string, of: parent.string) }

    /// The path without one trailing '/'.
    public var withoutTrailingSlash: HostPath { HostPath(WorkstationCore.withoutTrailingSlash(string)) }

    /// The first component with its leading '/': `/home/alice/x` -> `/home`; a path of one component is itself.
    public var firstComponent: HostPath {
        let u = string.utf8
        guard let slash = u.dropFirst().firstIndex(of: UInt8(ascii: "/")) else { return self }
        return HostPath(String(string[..<slash]))
    }

    /// The nearest proper ancestor of the path found in `candidates` (as bytes), or nil.
    public func nearestAncestor(in candidates: Set<HostPath>) -> HostPath? {
        var end = string.endIndex
        while let slash = string.utf8[..<end].lastIndex(of: UInt8(ascii: "/")) {
            if slash > string.startIndex {
                let ancestor = HostPath(String(string[..<slash]))
                if candidates.contains(ancestor) { return ancestor }
            }
            end = slash
        }
        return nil
    }

    /// The path's grandparent directory and the rest below it, cut at byte offsets:
    /// `/etc/systemd/system/x.d/file` -> (`/etc/systemd/system`, `x.d/file`); `/home/alice` -> (`/`, `home/alice`).
    /// The rest never starts with '/' (`/srv//f` -> (`/srv`, `f`): a rest of `/f` would let `openat(2)` ignore the
    /// directory), so a lookup of the rest relative to the directory reaches the path itself.
    public var grandparentSplit: (directory: String, relative: String) {
        // By byte offset: a Character-wise search walks grapheme clusters (and a combining mark after a '/' fuses
        // with it), many times the cost for an answer the kernel would not give.
        func offsets(_ b: UnsafeBufferPointer<UInt8>) -> (last: Int, parent: Int) {
            var last = b.count - 1
            while last >= 0 && b[last] != UInt8(ascii: "/") { last -= 1 }
            var parent = last - 1
            while parent >= 0 && b[parent] != UInt8(ascii: "/") { parent -= 1 }
            return (last, parent)
        }
        let path = string
        let u = path.utf8
        let (last, parent) = Self.withBytes(of: path, offsets)
        guard last > 0, parent >= 0 else { return ("/", String(path.drop { $0 == "/" })) }
        let at = { (offset: Int) in u.index(u.startIndex, offsetBy: offset) }
        // `/srv//f`: the slash found is the second of two; the relative part must not start with '/', or openat
        // would ignore the directory and read the host's own `/f`.
        var relative = path[at(parent + 1)...]
        while relative.utf8.first == UInt8(ascii: "/") {
            relative = relative[relative.utf8.index(after: relative.startIndex)...]
        }
        return (parent == 0 ? "/" : String(path[..<at(parent)]), String(relative))
    }

    /// `body` over `path`'s UTF-8 bytes (native strings hold them contiguously; any other is copied first).
    static func withBytes<R>(of path: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = path.utf8.withContiguousStorageIfAvailable(body) { return r }
        var copy = path
        copy.makeContiguousUTF8()
        return copy.utf8.withContiguousStorageIfAvailable(body)!
    }

    /// True when `a` and `b` have the same bytes.
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count
            && withBytes(of: a) { x in
                withBytes(of: b) { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
            }
    }
}

/// True when `path` is `parent/NAME` for one plain NAME (`/home/alice` under `/home`).
public func isDirectChild(_ path: String, of parent: String) -> Bool {
    let slash = UInt8(ascii: "/")
    let p = withoutTrailingSlash(parent)
    guard let rest = pathRest(path, after: p), rest.utf8.first == slash else { return false }
    let name = rest.dropFirst()
    return !name.isEmpty && !name.utf8.contains(slash) && name != "." && name != ".."
}

/// Joins absolute path parts with single slashes. Slashes are found by byte, as the kernel finds them (and without
/// the cost of Unicode-aware `hasSuffix`, for the tens of thousands of paths a large roster makes).
public func joinPath(_ base: String, _ rest: String...) -> String {
    var p = base
    for r in rest { appendComponent(r, to: &p) }
    return p
}

/// `joinPath` of one part (the common case: no argument array to allocate).
public func joinPath(_ base: String, _ rest: String) -> String {
    var p = base
    p.reserveCapacity(base.utf8.count + rest.utf8.count + 1)
    appendComponent(rest, to: &p)
    return p
}

/// `joinPath` of two parts.
public func joinPath(_ base: String, _ a: String, _ b: String) -> String {
    var p = base
    p.reserveCapacity(base.utf8.count + a.utf8.count + b.utf8.count + 2)
    appendComponent(a, to: &p)
    appendComponent(b, to: &p)
    return p
}

private func appendComponent(_ r: String, to p: inout String) {
    let slash = UInt8(ascii: "/")
    if p.utf8.last != slash { p += "/" }
    p += r.utf8.first == slash ? r[r.utf8.index(after: r.utf8.startIndex)...] : r[...]
}

/// `path` without one trailing `/`, removed by byte (`dropLast()` takes a whole Character, and a mark that fuses
/// with the '/' along with it).
public func withoutTrailingSlash(_ path: String) -> String {
    path.utf8.last == UInt8(ascii: "/") ? String(decoding: path.utf8.dropLast(), as: UTF8.self) : path
}

/// The rest of `path` after the bytes of `prefix`, or nil when `path` does not begin with those bytes. Paths compare
/// by byte, as the kernel compares names (String's `hasPrefix` compares by Unicode canonical equivalence).
public func pathRest(_ path: String, after prefix: String) -> Substring? {
    let n = prefix.utf8.count
    guard path.utf8.count >= n else { return nil }
    // One memcmp over the leading bytes instead of a walk with two iterators.
    let same = HostPath.withBytes(of: path) { a in
        HostPath.withBytes(of: prefix) { b in n == 0 || memcmp(a.baseAddress!, b.baseAddress!, n) == 0 }
    }
    guard same else { return nil }
    return path[path.utf8.index(path.utf8.startIndex, offsetBy: n)...]
}
