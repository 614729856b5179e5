import Foundation

/// The offboarding stages, in the order they must run (spec "User lifecycle").
public enum OffboardStage: String, Sendable, Codable, CaseIterable, Comparable {
    /// Reversible: units stopped and disabled, password locked, account expired, IdP gate membership dropped.
    case cut
    /// Cluster access and per-user secret files revoked.
    case revoke
    /// Irreversible: home archived, account deleted, uid retired.
    case archive

    public static func < (a: OffboardStage, b: OffboardStage) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The identities of a roster entry, recorded at every apply so offboarding still knows them after the entry is gone.
public struct RecordedIdentity: Sendable, Hashable, Codable {
    public var authentikUser: String
    public var k8sUser: String
    public var tier: String
    public var namespaces: [String]
    public init(authentikUser: String, k8sUser: String, tier: String, namespaces: [String]) {
        self.authentikUser = authentikUser
        self.k8sUser = k8sUser
        self.tier = tier
        self.namespaces = namespaces
    }
}

/// An account as it was before the cut stage changed it; reinstatement (roster entry back + apply) restores it.
public struct AccountBeforeState: Sendable, Hashable, Codable {
    /// Supplementary groups (`group(5)` member lists), in file order.
    public var groups: [String]
    public var shell: String
    /// The password field started with `!`.
    public var passwordLocked: Bool
    /// `shadow(5)` expiry, days since 1970-01-01; nil: never expires.
    public var expireDays: Int?
    /// Per-user unit instance -> enabled (an enablement link existed).
    public var units: [String: Bool]
    /// The IdP gate-group membership as the hook reported it, or `not configured`.
    public var idpMembership: String

    public init(
        groups: [String],
        shell: String,
        passwordLocked: Bool,
        expireDays: Int?,
        units: [String: Bool],
        idpMembership: String
    ) {
        self.groups = groups
        self.shell = shell
        self.passwordLocked = passwordLocked
        self.expireDays = expireDays
        self.units = units
        self.idpMembership = idpMembership
    }
}

/// The staged offboarding of one os_user, as far as it got.
public struct OffboardingRecord: Sendable, Hashable, Codable {
    public struct Cut: Sendable, Hashable, Codable {
        /// Seconds since 1970.
        public var time: Double
        public var before: AccountBeforeState
        /// False while a cut stopped half-way (rerun it); the first before-state is kept.
        public var completed: Bool
        public init(time: Double, before: AccountBeforeState, completed: Bool) {
            self.time = time
            self.before = before
            self.completed = completed
        }
    }
    public struct Revoke: Sendable, Hashable, Codable {
        public var time: Double
        /// Per-user secret files deleted (host paths).
        public var deletedFiles: [String]
        /// Recorded secret files that were already gone.
        public var absentFiles: [String]
        /// Cluster steps printed for an admin to apply.
        public var adminSteps: [String]
        /// Recorded secret files kept because they changed since workstation wrote them (host path -> why); they
        /// stay in the home, so the archive stage keeps them. Absent in records made before it existed.
        public var keptFiles: [String: String]?
        public init(
            time: Double,
            deletedFiles: [String],
            absentFiles: [String],
            adminSteps: [String],
            keptFiles: [String: String]? = nil
        ) {
            self.time = time
            self.deletedFiles = deletedFiles
            self.absentFiles = absentFiles
            self.adminSteps = adminSteps
            self.keptFiles = keptFiles
        }
    }
    public struct Archive: Sendable, Hashable, Codable {
        public var time: Double
        /// Host path of the archive.
        public var path: String
        /// Archive size, bytes.
        public var bytes: Int
        /// Hex SHA-256 of the archive.
        public var sha256: String
        /// Entries `tar -t` listed (the home directory included).
        public var entries: Int
        public init(time: Double, path: String, bytes: Int, sha256: String, entries: Int) {
            self.time = time
            self.path = path
            self.bytes = bytes
            self.sha256 = sha256
            self.entries = entries
        }
    }

    public var uid: Int
    public var home: String
    public var cut: Cut?
    public var revoke: Revoke?
    public var archive: Archive?

    public init(uid: Int, home: String) {
        self.uid = uid
        self.home = home
    }

    /// True when `stage` has completed.
    public func done(_ stage: OffboardStage) -> Bool {
        switch stage {
        case .cut: cut?.completed == true
        case .revoke: revoke != nil
        case .archive: archive != nil
        }
    }

    /// The first stage not yet recorded; nil when archived.
    public var nextStage: OffboardStage? { OffboardStage.allCases.first { !done($0) } }
}

extension OffboardingRecord.Archive {
    /// The archive's file name for `user` (uid `uid`) at `stamp` (ISO 8601 basic, UTC, e.g. `20250102T030405Z`):
    /// `alice-1001-20250102T030405Z.tar.gz`. The uid in the name is the second record of the retirement: it
    /// outlives `state.json` (see `retiredUid(fromFileName:)`).
    public static func fileName(user: String, uid: Int, stamp: String) -> String { "\(user)-\(uid)-\(stamp).tar.gz" }

    /// The uid in an archive's file name (`fileName(user:uid:stamp:)`, also its `.sha256` and an unfinished
    /// `.partial`), or nil for any other name. os_users may hold `-`, so the name is read from its end.
    public static func retiredUid(fromFileName name: String) -> Int? {
        var base = Substring(name)
        for suffix in [".sha256", ".partial"] where base.hasSuffix(suffix) { base = base.dropLast(suffix.count) }
        guard base.hasSuffix(".tar.gz") else { return nil }
        let parts = base.dropLast(".tar.gz".count).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, !parts[0].isEmpty, let stamp = parts.last, stamp.count == 16, stamp.hasSuffix("Z"),
            stamp.dropLast().allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "T") }),
            let digits = parts.dropLast().last, !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let uid = Int(digits), uid > 0
        else { return nil }
        return uid
    }
}

/// What `workstation cutover` changed for one user, so `workstation rollback` can restore it exactly.
/// A copy is also written as `<state dir>/cutover/<os_user>/rollback.json`, next to copies of the launchers.
public struct CutoverRecord: Sendable, Hashable, Codable {
    /// One entry under the home as it was: its kind, owner, mode, and link target or bytes.
    public struct Entry: Sendable, Hashable, Codable {
        /// Path relative to the home, e.g. `code`, `.claude/rules`.
        public var relative: String
        /// `absent`, `file`, `directory`, `symlink`, `other`.
        public var kind: String
        public var uid: Int
        public var gid: Int
        /// Permission bits, e.g. `0o755`.
        public var mode: UInt32
        public var linkTarget: String?
        public var content: Data?
        public init(
            relative: String,
            kind: String,
            uid: Int = 0,
            gid: Int = 0,
            mode: UInt32 = 0,
            linkTarget: String? = nil,
            content: Data? = nil
        ) {
            self.relative = relative
            self.kind = kind
            self.uid = uid
            self.gid = gid
            self.mode = mode
            self.linkTarget = linkTarget
            self.content = content
        }
    }

    /// Seconds since 1970.
    public var time: Double
    public var home: String
    /// `~/code` before.
    public var code: Entry
    /// Supplementary groups before, in file order.
    public var groups: [String]
    /// The launchers named in settings, before (kind `absent` when there was none).
    public var launchers: [Entry]
    /// The `~/.claude` links into the lead's home that cutover dropped.
    public var claudeLinks: [Entry]
    /// True once every change ran.
    public var completed: Bool = false
    /// When rollback restored this record; nil while cut over.
    public var rolledBack: Double?
    /// Where rollback moved the clone that replaced `~/code` (a host path), if any.
    public var cloneMovedTo: String?

    public init(time: Double, home: String, code: Entry, groups: [String], launchers: [Entry], claudeLinks: [Entry]) {
        self.time = time
        self.home = home
        self.code = code
        self.groups = groups
        self.launchers = launchers
        self.claudeLinks = claudeLinks
    }
}
