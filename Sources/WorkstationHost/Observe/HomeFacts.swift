import Foundation
import WorkstationCore

/// State of a person's `~/code` (spec section 5 and "Incrementality"): workstation provisions a clone only where
/// none exists and never replaces an existing one.
public enum CloneState: String, Sendable, Codable {
    /// A real directory holding a git repository (`.git` inside).
    case present
    /// Something the person already had, left as it is (skip-if-exists): a symlink, or a directory that is no clone.
    case kept
    /// Nothing at `~/code`.
    case missing

    /// Observes `~/code` with `lstat(2)`; `.git` is looked up only inside a real directory.
    /// - Returns: the state and, for a symlink, its target.
    public static func observe(home: String, root: HostRoot) -> (CloneState, String?) {
        let obs = Observer(root: root, settings: Settings())
        let code = joinPath(home, "code")
        let st = obs.pathState(code)
        switch st.kind {
        case .absent: return (.missing, nil)
        case .symlink: return (.kept, st.linkTarget)
        case .directory: return (obs.pathState(joinPath(code, ".git")).kind == .absent ? .kept : .present, nil)
        default: return (.kept, nil)
        }
    }
}

/// How a person's account stands in `/etc/passwd` and `/etc/shadow` (`shadow(5)`).
public enum AccountState: String, Sendable, Codable {
    /// Present, password not locked, not expired.
    case active
    /// Password locked (`!` before a hash: `passwd -l`); key-based logins may still work. A bare `!` (no password
    /// ever set, as `useradd` leaves it) is not a lock: those people log in through the front doors.
    case locked
    /// Account expiry day reached (`usermod --expiredate`): no login at all.
    case expired
    /// No `/etc/passwd` entry.
    case missing
    /// In `/etc/passwd` but missing from `/etc/shadow`.
    case noShadow = "missing-from-shadow"

    /// - Parameter today: days since 1970-01-01.
    public static func of(_ name: String, _ snap: HostSnapshot, today: Int) -> AccountState {
        guard snap.account(name) != nil else { return .missing }
        guard let sh = snap.shadow[name] else { return .noShadow }
        if let exp = sh.expireDays, exp <= today { return .expired }
        return sh.passwordLocked && sh.hasPasswordHash ? .locked : .active
    }

    /// Today in days since 1970-01-01 (UTC).
    public static var today: Int { Int(Date().timeIntervalSince1970 / 86400) }
}

extension HostSnapshot {
    /// Primary gid plus every group listing the user: what the kernel checks access with.
    public func gids(of user: String) -> Set<Int> {
        var out = Set(groups.filter { $0.members.contains(user) }.map(\.gid))
        if let a = account(user) { out.insert(a.gid) }
        return out
    }
}
