import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Permission bits of one access request: 4 read, 2 write, 1 execute (search, for a directory).
public struct AccessBits: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let read = AccessBits(rawValue: 4)
    public static let write = AccessBits(rawValue: 2)
    public static let execute = AccessBits(rawValue: 1)
}

/// A POSIX access ACL as stored in the `system.posix_acl_access` extended attribute
/// (`linux/posix_acl_xattr.h`: a little-endian u32 version 2, then entries of u16 tag, u16 perm, u32 id).
public struct PosixACL: Sendable, Hashable {
    public enum Tag: UInt16, Sendable {
        case userObj = 0x01
        case user = 0x02
        case groupObj = 0x04
        case group = 0x08
        case mask = 0x10
        case other = 0x20
    }
    public struct Entry: Sendable, Hashable {
        public var tag: Tag
        public var perm: UInt16
        /// uid or gid for named entries; unused otherwise.
        public var id: UInt32
    }
    public var entries: [Entry]

    /// Parses the attribute's bytes; nil when the version is not 2 or the length is not whole entries.
    public static func parse(_ bytes: [UInt8]) -> PosixACL? {
        guard bytes.count >= 4, (bytes.count - 4) % 8 == 0 else { return nil }
        func u16(_ i: Int) -> UInt16 { UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) | UInt32(u16(i + 2)) << 16 }
        guard u32(0) == 2 else { return nil }
        var out: [Entry] = []
        var i = 4
        while i < bytes.count {
            if let tag = Tag(rawValue: u16(i)) { out.append(Entry(tag: tag, perm: u16(i + 2), id: u32(i + 4))) }
            i += 8
        }
        return PosixACL(entries: out)
    }

    /// The access ACL of a path (following a final symlink, as path resolution does); nil when it has none.
    public static func read(_ path: String) -> PosixACL? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { sysGetxattr(path, "system.posix_acl_access", $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return parse(Array(buf[0..<n]))
    }
}

/// Decides whether an unprivileged user may access a path, the way the kernel does for a non-root caller
/// (`path_resolution(7)`, `acl(5)` "access check algorithm"): owner, named user (masked), owning and named groups
/// (masked), other. Capabilities are not considered: the user is not root.
public struct AccessCheck: Sendable {
    public var uid: Int
    /// Primary gid and every supplementary group.
    public var gids: Set<Int>

    public init(uid: Int, gids: Set<Int>) {
        self.uid = uid
        self.gids = gids
    }

    /// True when `want` is granted on the file with this owner, group, mode and ACL.
    public func allows(_ want: AccessBits, owner: Int, group: Int, mode: UInt32, acl: PosixACL?) -> Bool {
        let w = want.rawValue
        if uid == owner { return UInt16((mode >> 6) & 7) & w == w }
        guard let acl, acl.entries.contains(where: { $0.tag == .mask || $0.tag == .user || $0.tag == .group }) else {
            if gids.contains(group) { return UInt16((mode >> 3) & 7) & w == w }
            return UInt16(mode & 7) & w == w
        }
        let mask = acl.entries.first { $0.tag == .mask }?.perm ?? 7
        if let named = acl.entries.first(where: { $0.tag == .user && Int($0.id) == uid }) {
            return named.perm & mask & w == w
        }
        var matched = false
        for e in acl.entries {
            let applies = (e.tag == .groupObj && gids.contains(group)) || (e.tag == .group && gids.contains(Int(e.id)))
            guard applies else { continue }
            matched = true
            if e.perm & mask & w == w { return true }
        }
        if matched { return false }
        let other = acl.entries.first { $0.tag == .other }?.perm ?? UInt16(mode & 7)
        return other & w == w
    }

    /// Walks `hostPath` from `/`: every directory on the way needs search (x), the last needs `last`.
    /// - Returns: nil when reachable, else the first host path that blocks and what it lacks.
    public func blocker(
        _ hostPath: String,
        root: HostRoot,
        last: AccessBits = [.read, .execute]
    ) -> (path: String, lacks: String)? {
        var parts = ["/"]
        var cur = ""
        for comp in hostPath.split(separator: "/") {
            cur += "/" + comp
            parts.append(cur)
        }
        for (i, p) in parts.enumerated() {
            let full = root.path(p)
            var st = stat()
            guard stat(full, &st) == 0 else { return (p, "existence (it is missing)") }
            let want: AccessBits = i == parts.count - 1 ? last : .execute
            if !allows(
                want,
                owner: Int(st.st_uid),
                group: Int(st.st_gid),
                mode: UInt32(st.st_mode) & 0o7777,
                acl: PosixACL.read(full)
            ) {
                return (p, want == .execute ? "search (x)" : "read and search (r-x)")
            }
        }
        return nil
    }
}

/// `getxattr(2)` from libc: `<sys/xattr.h>` is not part of Swift's Glibc module, so the symbol is bound directly.
/// Returns the attribute's size, or -1 with `errno` set (`ENODATA` when the path has no such attribute).
@_silgen_name("getxattr")
private func sysGetxattr(
    _ path: UnsafePointer<CChar>,
    _ name: UnsafePointer<CChar>,
    _ value: UnsafeMutableRawPointer?,
    _ size: Int
) -> Int
