import Foundation

/// One line of `passwd(5)`.
public struct PasswdEntry: Sendable, Hashable, Codable {
    public var name: String
    public var uid: Int
    public var gid: Int
    public var gecos: String
    public var home: String
    public var shell: String
    public init(name: String, uid: Int, gid: Int, gecos: String = "", home: String, shell: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.gecos = gecos
        self.home = home
        self.shell = shell
    }
}

/// One line of `group(5)`.
public struct GroupEntry: Sendable, Hashable, Codable {
    public var name: String
    public var gid: Int
    public var members: [String]
    public init(name: String, gid: Int, members: [String]) {
        self.name = name
        self.gid = gid
        self.members = members
    }
}

/// The parts of `shadow(5)` workstation reads: lock and expiry.
public struct ShadowEntry: Sendable, Hashable, Codable {
    public var name: String
    /// True when the password field starts with `!` (`passwd -l`, `usermod -L`).
    public var passwordLocked: Bool
    /// Account expiration, days since 1970-01-01; nil when empty (never expires).
    public var expireDays: Int?
    /// True when a password hash is set behind any `!` (false for the bare `!`, `!!` or `*` of an account that
    /// never had a password, as `useradd` leaves it).
    public var hasPasswordHash: Bool
    public init(name: String, passwordLocked: Bool, expireDays: Int?, hasPasswordHash: Bool = true) {
        self.name = name
        self.passwordLocked = passwordLocked
        self.expireDays = expireDays
        self.hasPasswordHash = hasPasswordHash
    }
}
