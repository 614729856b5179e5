import Foundation
import WorkstationCore

/// Why `workstation ttyd-login` refuses a login. Each message is lower-case and says what to do.
public enum TtydLoginError: Error, Sendable, Equatable, CustomStringConvertible {
    case noUser
    case malformedUser(String, problem: String)
    case unknownUser(String, map: String)
    case mapUnreadable(String)
    case malformedTarget(user: String, osUser: String, problem: String)
    case noAccount(String)
    case rootAccount(String)
    case shadowUnreadable(String)
    case noShadowEntry(String)
    case locked(String)
    case expired(String, day: Int)

    public var description: String {
        switch self {
        case .noUser:
            "TTYD_USER is empty or unset; run ttyd with -H X-authentik-username behind the forward-auth proxy"
        case .malformedUser(let u, let p):
            "TTYD_USER '\(printable(u))' \(p); refusing the login"
        case .unknownUser(let u, let map):
            "'\(printable(u))' is not in \(map); ask an administrator to add them to the roster and run workstation apply"
        case .mapUnreadable(let path):
            "cannot read \(path); run workstation apply to regenerate it"
        case .malformedTarget(let u, let os, let p):
            "the map sends '\(printable(u))' to account '\(printable(os))', which \(p); fix the roster and run workstation apply"
        case .noAccount(let os):
            "account '\(printable(os))' does not exist in /etc/passwd; run workstation apply"
        case .rootAccount(let os):
            "account '\(printable(os))' has uid 0; a terminal login never becomes root, fix the roster"
        case .shadowUnreadable(let path):
            "cannot read \(path); ttyd-login must run as root to check whether the account is locked"
        case .noShadowEntry(let os):
            "account '\(printable(os))' has no /etc/shadow entry, so whether it is locked cannot be told; refusing"
        case .locked(let os):
            "account '\(printable(os))' is locked (offboarded); ask an administrator"
        case .expired(let os, let day):
            "account '\(printable(os))' expired on day \(day) since 1970-01-01; ask an administrator"
        }
    }
}

/// The login shim ttyd runs for each terminal: maps `TTYD_USER` to an os_user and starts that user's login shell.
///
/// ttyd (`-H X-authentik-username`) passes the header's value, cut at 29 characters, as `TTYD_USER` (ttyd
/// README, "Options"). The map is `/etc/ttyd-user-map` (docs/dispatch-json.md): `authentik_user=os_user` lines,
/// matched exactly. Accounts are read from `/etc/passwd` and `/etc/shadow` (`passwd(5)`, `shadow(5)`).
public struct TtydLogin: Sendable {
    /// Root prefix for every file read (`/` in production, a temp directory in tests).
    public var root: String
    /// The map path under `root`.
    public var mapPath: String
    /// The program run for the login, `runuser(1)` from util-linux.
    public var runuser: String

    public init(root: String = "/", mapPath: String = "/etc/ttyd-user-map", runuser: String = "/usr/sbin/runuser") {
        self.root = root
        self.mapPath = mapPath
        self.runuser = runuser
    }

    func path(_ p: String) -> String {
        root == "/" || root.isEmpty ? p : (root.hasSuffix("/") ? String(root.dropLast()) : root) + p
    }

    /// The argv to exec for `ttydUser`: `[runuser, "-l", os_user]`.
    ///
    /// - Parameter today: days since 1970-01-01 (UTC), compared with the shadow expire field.
    /// - Throws: `TtydLoginError` when the name is empty, 29 characters or more (perhaps cut short by ttyd) or malformed; not in the map; mapped
    ///   to a malformed name, a missing account, uid 0, an account without a shadow entry, locked (`!` password
    ///   field) or expired (expire field <= today).
    public func resolve(ttydUser: String?, today: Int) throws(TtydLoginError) -> [String] {
        guard let user = ttydUser, !user.isEmpty else { throw .noUser }
        if let problem = identityProblem(user) { throw .malformedUser(user, problem: problem) }
        guard let mapData = FileManager.default.contents(atPath: path(mapPath)) else { throw .mapUnreadable(mapPath) }
        let map = DerivedFileRenderer.parseTtydUserMap(mapData)
        guard let osUser = map[user] else { throw .unknownUser(user, map: mapPath) }
        if let problem = accountNameProblem(osUser) {
            throw .malformedTarget(user: user, osUser: osUser, problem: problem)
        }
        guard let passwd = FileManager.default.contents(atPath: path("/etc/passwd")) else { throw .noAccount(osUser) }
        guard let entry = Self.fields(of: osUser, in: passwd), entry.count >= 7 else { throw .noAccount(osUser) }
        guard let uid = Int(entry[2]) else { throw .noAccount(osUser) }
        if uid == 0 { throw .rootAccount(osUser) }
        guard let shadow = FileManager.default.contents(atPath: path("/etc/shadow")) else {
            throw .shadowUnreadable("/etc/shadow")
        }
        guard let sh = Self.fields(of: osUser, in: shadow), sh.count >= 2 else { throw .noShadowEntry(osUser) }
        // A locked password is `!` before a hash (`usermod -L`); a bare `!` or `*` is an account that never had a
        // password (what useradd leaves), which is not an offboarding: expiry is what the cut sets.
        if sh[1].hasPrefix("!") && sh[1].count > 1 && sh[1] != "!*" { throw .locked(osUser) }
        if sh.count >= 8, !sh[7].isEmpty {
            guard let expire = Int(sh[7]) else { throw .expired(osUser, day: 0) }
            if expire <= today { throw .expired(osUser, day: expire) }
        }
        return [runuser, "-l", osUser]
    }

    /// Today as `shadow(5)` counts: whole days since 1970-01-01 UTC.
    public static func today(_ now: Date = Date()) -> Int { Int(now.timeIntervalSince1970 / 86_400) }

    /// The `:`-separated fields of the line whose first field is exactly `name`.
    static func fields(of name: String, in data: Data) -> [String]? {
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.first.map(String.init) == name { return f.map(String.init) }
        }
        return nil
    }

    /// Replaces the process with `argv` (`execv(2)`); returns only on failure, with errno's message.
    public static func exec(_ argv: [String]) -> String {
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        execv(argv[0], cargs)
        let message = String(cString: strerror(errno))
        for p in cargs { free(p) }
        return "cannot run \(argv[0]): \(message); install util-linux's runuser"
    }
}
