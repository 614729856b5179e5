import Foundation

/// One entry of a POSIX access ACL (`acl(5)`), as stored in the `system.posix_acl_access` attribute.
public struct ACLEntry: Sendable, Hashable, Codable {
    public enum Tag: UInt16, Sendable, Hashable, Codable {
        case userObj = 0x01
        case user = 0x02
        case groupObj = 0x04
        case group = 0x08
        case mask = 0x10
        case other = 0x20
    }
    public var tag: Tag
    /// uid for `user`, gid for `group`; nil for the others.
    public var id: Int?
    /// `rwx` as 4, 2, 1.
    public var perms: UInt8
    public init(tag: Tag, id: Int? = nil, perms: UInt8) {
        self.tag = tag
        self.id = id
        self.perms = perms
    }

    /// Decodes the attribute value: a little-endian `u32` version (2), then 8-byte entries
    /// `{u16 tag, u16 perm, u32 id}` (Linux `include/uapi/linux/posix_acl_xattr.h`). Nil when malformed.
    public static func decode(_ data: Data) -> [ACLEntry]? {
        let b = [UInt8](data)
        guard b.count >= 4, (b.count - 4) % 8 == 0 else { return nil }
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
        func u32(_ i: Int) -> UInt32 {
            UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
        }
        guard u32(0) == 2 else { return nil }
        var out: [ACLEntry] = []
        var i = 4
        while i < b.count {
            guard let tag = Tag(rawValue: u16(i)) else { return nil }
            let id = tag == .user || tag == .group ? Int(u32(i + 4)) : nil
            out.append(ACLEntry(tag: tag, id: id, perms: UInt8(u16(i + 2) & 7)))
            i += 8
        }
        return out
    }
}

/// What a path lookup touched: a directory searched, or the object reached at the end.
public struct TraversedEntry: Sendable, Hashable, Codable {
    /// Host path, as resolved (symlinks followed the way the kernel does).
    public var path: String
    public var kind: PathState.Kind
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    /// The access ACL when the entry has extended entries; empty for a plain mode.
    public var acl: [ACLEntry]
    /// Permissions a reader needs here: `x` (1) to search a directory, `r-x` (5) on the final directory,
    /// `r` (4) on a final file.
    public var need: UInt8

    public init(path: String, kind: PathState.Kind, mode: UInt32, uid: Int, gid: Int, acl: [ACLEntry] = [], need: UInt8)
    {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.acl = acl
        self.need = need
    }

    /// True when a process with `uid` and the group ids `gids` has every permission in `need` (the access check
    /// algorithm of `acl(5)`; without extended entries it reduces to the owner/group/other bits of `chmod(1)`).
    public func allows(uid u: Int, gids: Set<Int>, need: UInt8? = nil) -> Bool {
        let want = need ?? self.need
        if u == 0 { return true }
        let ownerBits = UInt8((mode >> 6) & 7)
        let groupBits = UInt8((mode >> 3) & 7)
        let otherBits = UInt8(mode & 7)
        if u == uid { return ownerBits & want == want }
        let mask = acl.first { $0.tag == .mask }?.perms ?? 7
        if let named = acl.first(where: { $0.tag == .user && $0.id == u }) { return named.perms & mask & want == want }
        let groupObj = acl.isEmpty ? groupBits : (acl.first { $0.tag == .groupObj }?.perms ?? groupBits) & mask
        var matched = false
        if gids.contains(gid) {
            matched = true
            if groupObj & want == want { return true }
        }
        for e in acl where e.tag == .group && gids.contains(e.id ?? -1) {
            matched = true
            if e.perms & mask & want == want { return true }
        }
        if matched { return false }
        return otherBits & want == want
    }

    /// This entry as it would be after `setfacl -m g:GID:PERMS` with the mask widened by exactly those bits.
    public func granting(group gidValue: Int, perms: UInt8) -> TraversedEntry {
        var e = self
        var acl = self.acl
        if acl.isEmpty {
            acl = [
                ACLEntry(tag: .userObj, perms: UInt8((mode >> 6) & 7)),
                ACLEntry(tag: .groupObj, perms: UInt8((mode >> 3) & 7)),
                ACLEntry(tag: .other, perms: UInt8(mode & 7)), ACLEntry(tag: .mask, perms: UInt8((mode >> 3) & 7)),
            ]
        }
        if let i = acl.firstIndex(where: { $0.tag == .group && $0.id == gidValue }) {
            acl[i].perms |= perms
        } else {
            acl.append(ACLEntry(tag: .group, id: gidValue, perms: perms))
        }
        if let i = acl.firstIndex(where: { $0.tag == .mask }) { acl[i].perms |= perms }
        e.acl = acl
        return e
    }
}

/// How one inherited item of the config base is reached: every directory searched on the way and the item.
public struct ReachChain: Sendable, Hashable, Codable {
    /// The item as configured, e.g. `/srv/workstation/config-base/skills`.
    public var item: String
    /// In lookup order; the last entry is the item itself when it exists.
    public var entries: [TraversedEntry]
    /// Set when the lookup did not reach the item (absent, a symlink loop, a file where a directory belongs).
    public var problem: String?

    public init(item: String, entries: [TraversedEntry], problem: String? = nil) {
        self.item = item
        self.entries = entries
        self.problem = problem
    }

    /// The entries that stop `uid` (with `gids`) from reading the item, in lookup order; empty when it can.
    public func blocking(uid: Int, gids: Set<Int>) -> [TraversedEntry] {
        entries.filter { !$0.allows(uid: uid, gids: gids) }
    }
}

/// `rwx` text of permission bits: 5 -> `r-x`.
public func permsText(_ p: UInt8) -> String {
    (p & 4 != 0 ? "r" : "-") + (p & 2 != 0 ? "w" : "-") + (p & 1 != 0 ? "x" : "-")
}
