import Foundation
import WorkstationCore

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
            out[f[0]] = ShadowEntry(name: f[0], passwordLocked: f[1].hasPrefix("!"), expireDays: Int(f[7]),
                                    hasPasswordHash: !hash.isEmpty && hash != "*")
        }
        return out
    }

    /// `UID_MIN` and `UID_MAX` from `login.defs(5)`; Debian's defaults 1000 and 60000 when absent.
    public static func uidRange(loginDefs data: Data?) -> ClosedRange<Int> {
        var lo = 1000, hi = 60000
        for line in String(decoding: data ?? Data(), as: UTF8.self).split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let n = Int(parts[1]) else { continue }
            if parts[0] == "UID_MIN" { lo = n }
            if parts[0] == "UID_MAX" { hi = n }
        }
        return lo <= hi ? lo...hi : 1000...60000
    }

    private static func lines(_ data: Data) -> [[String]] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.hasPrefix("#") ? nil : line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
    }
}
