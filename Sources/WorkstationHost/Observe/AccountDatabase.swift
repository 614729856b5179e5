import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Parsers for the shadow-utils databases, read as files (observing never spawns a process).
public enum AccountDatabase {
    /// `passwd(5)`: `name:x:uid:gid:gecos:home:shell`; malformed lines are skipped.
    public static func passwd(_ data: Data) -> [PasswdEntry] {
        lines(data).compactMap { f in
            guard f.count >= 7, let uid = Int(f[2]), let gid = Int(f[3]) else { return nil }
            return PasswdEntry(name: f[0], uid: uid, gid: gid, gecos: f[4], home: f[5], shell: f[6])
        }
    }

    /// `group(5)`: `name:x:gid:member,member`.
    public static func group(_ data: Data) -> [GroupEntry] {
        lines(data).compactMap { f in
            guard f.count >= 4, let gid = Int(f[2]) else { return nil }
            return GroupEntry(name: f[0], gid: gid, members: f[3].split(separator: ",").map(String.init))
        }
    }

    /// `shadow(5)`: locked when the password field starts with `!`; field 8 is the expiry day.
    public static func shadow(_ data: Data) -> [String: ShadowEntry] {
        var out: [String: ShadowEntry] = [:]
        for f in lines(data) where f.count >= 8 {
            let hash = f[1].drop { $0 == "!" }
            out[f[0]] = ShadowEntry(
                name: f[0],
                passwordLocked: f[1].hasPrefix("!"),
                expireDays: Int(f[7]),
                hasPasswordHash: !hash.isEmpty && hash != "*"
            )
        }
        return out
    }

    /// `UID_MIN` and `UID_MAX` from `login.defs(5)`; Debian's defaults 1000 and 60000 when absent.
    public static func uidRange(loginDefs data: Data?) -> ClosedRange<Int> {
        range(loginDefs: data, "UID_MIN", "UID_MAX", default: 1000...60000)
    }

    /// `SYS_GID_MIN` and `SYS_GID_MAX` from `login.defs(5)`: the gids `groupadd -r` gives system groups; Debian's
    /// defaults 100 and 999 when absent.
    public static func systemGidRange(loginDefs data: Data?) -> ClosedRange<Int> {
        range(loginDefs: data, "SYS_GID_MIN", "SYS_GID_MAX", default: 100...999)
    }

    /// The number `key` is set to in `login.defs(5)`; nil when it is absent or not a number.
    static func number(loginDefs data: Data?, _ key: Substring) -> Int? {
        var out: Int?
        for line in String(decoding: data ?? Data(), as: UTF8.self).split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, parts[0] == key, let n = Int(parts[1]) { out = n }
        }
        return out
    }

    /// `subuid(5)` / `subgid(5)`: `OWNER:FIRST:COUNT` lines (the owner a name or a uid).
    static func subordinateRanges(_ data: Data) -> [(owner: String, first: Int, count: Int)] {
        lines(data).compactMap { f in
            guard f.count >= 3, let first = Int(f[1]), let count = Int(f[2]), count > 0 else { return nil }
            return (f[0], first, count)
        }
    }

    /// The first id of the lowest run of `count` ids from `min` to `max` (both included) that no range holds: the
    /// search `useradd(8)` makes for a new account's subordinate ids (shadow's `find_free_range`); nil when none.
    static func firstFreeRange(
        _ ranges: [(owner: String, first: Int, count: Int)],
        min: Int,
        max: Int,
        count: Int
    ) -> Int? {
        guard count > 0, max >= min else { return nil }
        var low = min
        for r in ranges.sorted(by: { ($0.first, $0.count) < ($1.first, $1.count) }) {
            let high = Swift.min(r.first, max + 1)
            if high > low && high - low >= count { return low }
            low = Swift.max(low, r.first + r.count)
            if low > max { return nil }
        }
        return max - low + 1 >= count ? low : nil
    }

    static func range(
        loginDefs data: Data?,
        _ minKey: Substring,
        _ maxKey: Substring,
        default d: ClosedRange<Int>
    ) -> ClosedRange<Int> {
        var lo = d.lowerBound
        var hi = d.upperBound
        for line in String(decoding: data ?? Data(), as: UTF8.self).split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let n = Int(parts[1]) else { continue }
            if parts[0] == minKey { lo = n }
            if parts[0] == maxKey { hi = n }
        }
        return lo <= hi ? lo...hi : d
    }

    /// The fields of each line that is neither empty nor a comment, split on `:` (empty fields kept). Lines and
    /// fields are cut on the bytes `\n` and `:` (what shadow-utils does); each field is then decoded as UTF-8,
    /// an invalid sequence becoming U+FFFD.
    static func lines(_ data: Data) -> [[String]] {
        data.withUnsafeBytes { raw -> [[String]] in
            let bytes = raw.bindMemory(to: UInt8.self)
            var out: [[String]] = []
            out.reserveCapacity(bytes.count / 48)
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                if end > start && bytes[start] != 0x23 {  // "#"
                    var fields: [String] = []
                    fields.reserveCapacity(7)
                    var f = start
                    for i in start...end where i == end || bytes[i] == 0x3A {  // ":"
                        fields.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[f..<i]), as: UTF8.self))
                        f = i + 1
                    }
                    out.append(fields)
                }
                start = end + 1
            }
            return out
        }
    }
}

/// Looks accounts up by name in `passwd(5)` under a root, parsing the file again only when it changed (its
/// device, inode, size, modification or change time differ from the last read; shadow-utils replaces the file
/// with `rename(2)` on every edit). An apply asks for the same accounts many times while the file changes once per
/// account created, so this keeps each lookup to one `stat(2)`.
final class AccountLookup {
    private let path: String
    private let root: HostRoot
    private var signature: [Int] = []
    private var byName: [String: PasswdEntry] = [:]

    init(root: HostRoot) {
        self.root = root
        self.path = root.path("/etc/passwd")
    }

    /// The first entry named `name` in the file as it is now; nil when there is none (or no file).
    func entry(_ name: String) -> PasswdEntry? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let sig = [
            Int(st.st_dev), Int(st.st_ino), Int(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec,
            st.st_ctim.tv_nsec,
        ]
        if sig != signature {
            byName = Dictionary(
                AccountDatabase.passwd(root.read("/etc/passwd") ?? Data()).map { ($0.name, $0) },
                uniquingKeysWith: { first, _ in first }
            )
            signature = sig
        }
        return byName[name]
    }
}
