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

/// What `lstat(2)` says about a path, plus the link target or (small, regular) file content.
public struct PathState: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case absent, file, directory, symlink, other }
    public var kind: Kind
    /// Permission bits, e.g. `0o700`.
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    /// For a symlink, its target as written.
    public var linkTarget: String?
    /// For a regular file read by request, its bytes.
    public var content: Data?
    /// Hard links to a regular file (`st_nlink`); root never tightens or rewrites a file with more than one.
    public var linkCount: Int = 1
    /// True when the path could not be reached because a directory on the way is a symlink or not a directory
    /// (kind `.other`): workstation never follows it, so anything planned there is a conflict.
    public var blocked: Bool = false

    public init(
        kind: Kind,
        mode: UInt32 = 0,
        uid: Int = 0,
        gid: Int = 0,
        linkTarget: String? = nil,
        content: Data? = nil
    ) {
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.linkTarget = linkTarget
        self.content = content
    }

    public static let absent = PathState(kind: .absent)
}

/// Path states by host path: a dictionary split into `PathTable.shardCount` shards by a hash of the path, so that
/// observe's readers fill the shards in parallel (`fill(_:)`) instead of merging a large host's paths on one thread.
/// Reads and writes go through `subscript`, as on a dictionary; two tables are equal when they hold the same paths.
/// Paths are told apart by their bytes, as the kernel tells names apart: two Unicode spellings of one name (NFC and
/// NFD, which String's `==` takes as equal) are two entries, as they are two files.
public struct PathTable: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public static let shardCount = 8
    private var shards: [[PathKey: PathState]] = Array(repeating: [:], count: PathTable.shardCount)

    public init(dictionaryLiteral elements: (String, PathState)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// The shard of `path`: FNV-1a over its UTF-8 bytes, modulo `shardCount`.
    public static func shard(of path: String) -> Int { PathKey(path).shard }

    public subscript(path: String) -> PathState? {
        get {
            let key = PathKey(path)
            return shards[key.shard][key]
        }
        set {
            let key = PathKey(path)
            shards[key.shard][key] = newValue
        }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.count } }

    /// Room for `n` paths in all, spread over the shards.
    public mutating func reserveCapacity(_ n: Int) {
        for i in shards.indices { shards[i].reserveCapacity(n / Self.shardCount + 1) }
    }

    /// Adds `entries`; a path already present keeps what `combine(old, new)` returns.
    public mutating func merge(
        _ entries: [(String, PathState)],
        uniquingKeysWith combine: (PathState, PathState) -> PathState
    ) {
        for (k, v) in entries {
            let key = PathKey(k)
            shards[key.shard].merge(CollectionOfOne((key, v)), uniquingKeysWith: combine)
        }
    }

    /// Adds entries already sorted by shard (`parts[worker][shard]`, each entry's shard as `shard(of:)` gives it),
    /// one thread per shard; a path present twice keeps what `combine(old, new)` returns, in the order of `parts`.
    public mutating func fill(
        _ parts: [[[(String, PathState)]]],
        uniquingKeysWith combine: @escaping @Sendable (PathState, PathState) -> PathState
    ) {
        // Each shard moves into a box of its own (no other reference, so it grows in place), is filled, moves back.
        final class Box: @unchecked Sendable {
            var shard: [PathKey: PathState]
            init(_ s: [PathKey: PathState]) { shard = s }
        }
        var boxes: [Box] = []
        for i in shards.indices {
            boxes.append(Box(shards[i]))
            shards[i] = [:]
        }
        let filled = boxes
        DispatchQueue.concurrentPerform(iterations: Self.shardCount) { i in
            let box = filled[i]
            box.shard.reserveCapacity(box.shard.count + parts.reduce(0) { $0 + $1[i].count })
            for part in parts {
                box.shard.merge(
                    part[i].lazy.map { entry in
                        let key = PathKey(entry.0)
                        assert(key.shard == i, "\(entry.0) handed to shard \(i), belongs in \(key.shard)")
                        return (key, entry.1)
                    },
                    uniquingKeysWith: combine
                )
            }
        }
        for i in shards.indices { shards[i] = boxes[i].shard }
    }
}

/// A path as a dictionary key, told apart from others by its UTF-8 bytes (`memcmp`), not by Unicode canonical
/// equivalence as String is: the kernel compares names by byte. Its FNV-1a hash over those bytes, taken when the key
/// is made, picks the shard and is what a dictionary hashes (the paths are workstation's own, not chosen to collide).
public struct PathKey: Hashable, Sendable {
    public let path: String
    let fnv: UInt32

    public init(_ path: String) {
        self.path = path
        fnv = Self.withBytes(of: path) { bytes in
            var h: UInt32 = 2_166_136_261
            for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 }
            return h
        }
    }

    var shard: Int { Int(fnv % UInt32(PathTable.shardCount)) }

    /// `body` over the path's UTF-8 bytes (native strings hold them contiguously; any other is copied first).
    static func withBytes<R>(of path: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = path.utf8.withContiguousStorageIfAvailable(body) { return r }
        var copy = path
        copy.makeContiguousUTF8()
        return copy.utf8.withContiguousStorageIfAvailable(body)!
    }

    public static func == (a: PathKey, b: PathKey) -> Bool {
        a.fnv == b.fnv && a.path.utf8.count == b.path.utf8.count
            && withBytes(of: a.path) { x in
                withBytes(of: b.path) { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
            }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fnv) }
}

/// Everything observe read from the host, under the root prefix. Paths are host paths (`/etc/passwd`), never prefixed.
public struct HostSnapshot: Sendable, Hashable {
    public var passwd: [PasswdEntry] = [] { didSet { accountIndex = Self.firstIndex(passwd.map(\.name)) } }
    public var groups: [GroupEntry] = [] {
        didSet {
            groupIndex = Self.firstIndex(groups.map(\.name))
            memberIndex = groupIndex.mapValues { Set(groups[$0].members) }
        }
    }
    // Lookups by name are hashed, not scanned: the planner asks for each user's account and groups, which made a
    // plan of n users O(n^2) with linear search. Derived from passwd and groups, kept in step by didSet.
    private var accountIndex: [String: Int] = [:]
    private var groupIndex: [String: Int] = [:]
    private var memberIndex: [String: Set<String>] = [:]
    public var shadow: [String: ShadowEntry] = [:]
    /// Paths observed on request (homes, links, derived files, drop-ins, unit templates).
    public var paths: PathTable = [:]
    /// Unit instances with an enablement symlink in a `*.wants/` directory under `/etc/systemd/system`.
    public var enabledUnits: Set<String> = []
    /// Units that are active (or activating) now: those with an invocation record in `/run/systemd/units/`.
    /// Empty when systemd does not run under this root.
    public var activeUnits: Set<String> = []
    /// True when root is `/` and `/run/systemd/system` exists (`sd_booted(3)`): units can be started.
    public var systemdRunning = false
    /// `UID_MIN` and `UID_MAX` from `login.defs(5)`.
    public var uidRange: ClosedRange<Int> = 1000...60000
    /// `SYS_GID_MIN` and `SYS_GID_MAX` from `login.defs(5)`: system groups' gids.
    public var systemGidRange: ClosedRange<Int> = 100...999
    /// workstation's own record (state.json).
    public var state = WorkstationState()
    /// Authentik, the k8s_users map and Vault, read before planning (empty when not configured).
    public var remote = RemoteSnapshot()
    /// `/proc/meminfo` under the root; nil when absent (capacity unknown).
    public var memory: MemoryInfo?

    public init() {}

    /// The first `passwd` line named `name`, as `getpwnam(3)` finds it.
    public func account(_ name: String) -> PasswdEntry? { accountIndex[name].map { passwd[$0] } }
    /// The first `group` line named `name`, as `getgrnam(3)` finds it.
    public func group(_ name: String) -> GroupEntry? { groupIndex[name].map { groups[$0] } }
    /// True when `user` is listed as a member of `group` (in that group's first line).
    public func isMember(_ user: String, of group: String) -> Bool { memberIndex[group]?.contains(user) == true }

    private static func firstIndex(_ names: [String]) -> [String: Int] {
        var out: [String: Int] = [:]
        out.reserveCapacity(names.count)
        for (i, n) in names.enumerated() where out[n] == nil { out[n] = i }
        return out
    }
    public func path(_ p: String) -> PathState { paths[p] ?? .absent }

    /// Supplementary groups of `user` (membership lists in `/etc/group`).
    public func groupsOf(_ user: String) -> [String] { groups.filter { $0.members.contains(user) }.map(\.name) }
}

/// workstation's record of what it manages, `<state dir>/state.json`. Only what is recorded here (or named by
/// the roster) is ever changed.
public struct WorkstationState: Sendable, Hashable, Codable {
    public struct Account: Sendable, Hashable, Codable {
        public var uid: Int
        /// True when workstation ran useradd for it (false: adopted, existed before).
        public var created: Bool
        public init(uid: Int, created: Bool) {
            self.uid = uid
            self.created = created
        }
    }
    public var version = 1
    /// os_user -> account record, for every non-admin workstation has managed.
    public var accounts: [String: Account] = [:]
    /// unit template -> os_user -> port.
    public var ports: [String: [String: Int]] = [:]
    /// Groups workstation created with groupadd.
    public var createdGroups: [String] = []
    /// os_user -> groups workstation added them to.
    public var addedMemberships: [String: [String]] = [:]
    /// uids of archived accounts; never handed out again.
    public var retiredUids: [Int] = []
    /// Completion time of the last apply that verified clean (seconds since 1970).
    public var lastSuccessfulApply: Double?
    /// os_user -> home-relative paths of other files workstation wrote once (kubeconfig, Vault helper).
    public var homeFiles: [String: [String]]?
    /// Machine-wide files workstation wrote and may regenerate (e.g. managed-settings.json); nil in older files.
    public var ownedFiles: [String]?
    /// os_user -> the staged offboarding as far as it got (kept after archive).
    public var offboarding: [String: OffboardingRecord] = [:]
    /// os_user -> the last cutover and whether it was rolled back.
    public var cutovers: [String: CutoverRecord] = [:]
    /// os_user -> host paths of per-user secret files workstation wrote (deleted by `offboard --stage revoke`).
    public var secretFilesWritten: [String: [String]] = [:]
    /// os_user -> host path -> `sha256:<hex>` of the bytes workstation wrote there (secret files). The revoke stage
    /// deletes a file only while it still holds exactly those bytes; a changed one is kept for the archive.
    public var writtenDigests: [String: [String: String]] = [:]
    /// os_user -> host paths of secret files whose Vault read failed: retried on every run until written.
    public var secretFilesPending: [String: [String]] = [:]
    /// os_user -> identities of the roster entry at the last apply (offboarding needs them after the entry is gone).
    public var identities: [String: RecordedIdentity] = [:]
    /// os_user -> their Kubernetes workspace, while placed there and until its claim is released
    /// (`WorkspaceRecord`); absent in files written before placement existed.
    public var workspaces: [String: WorkspaceRecord] = [:]

    public init() {}

    /// Decodes any older state file: every field missing from it takes its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        accounts = try c.decodeIfPresent([String: Account].self, forKey: .accounts) ?? [:]
        ports = try c.decodeIfPresent([String: [String: Int]].self, forKey: .ports) ?? [:]
        createdGroups = try c.decodeIfPresent([String].self, forKey: .createdGroups) ?? []
        addedMemberships = try c.decodeIfPresent([String: [String]].self, forKey: .addedMemberships) ?? [:]
        retiredUids = try c.decodeIfPresent([Int].self, forKey: .retiredUids) ?? []
        lastSuccessfulApply = try c.decodeIfPresent(Double.self, forKey: .lastSuccessfulApply)
        offboarding = try c.decodeIfPresent([String: OffboardingRecord].self, forKey: .offboarding) ?? [:]
        cutovers = try c.decodeIfPresent([String: CutoverRecord].self, forKey: .cutovers) ?? [:]
        secretFilesWritten = try c.decodeIfPresent([String: [String]].self, forKey: .secretFilesWritten) ?? [:]
        writtenDigests = try c.decodeIfPresent([String: [String: String]].self, forKey: .writtenDigests) ?? [:]
        secretFilesPending = try c.decodeIfPresent([String: [String]].self, forKey: .secretFilesPending) ?? [:]
        identities = try c.decodeIfPresent([String: RecordedIdentity].self, forKey: .identities) ?? [:]
        workspaces = try c.decodeIfPresent([String: WorkspaceRecord].self, forKey: .workspaces) ?? [:]
        homeFiles = try c.decodeIfPresent([String: [String]].self, forKey: .homeFiles)
        ownedFiles = try c.decodeIfPresent([String].self, forKey: .ownedFiles)
        intents = try c.decodeIfPresent(Intents.self, forKey: .intents)
    }

    /// What a run was about to do with a tool when it last saved: set just before useradd, groupadd or usermod
    /// runs, cleared when it returns. A run killed meanwhile leaves it, and the tool may still finish on its own;
    /// the next run settles it against the host (`settleIntents`). Absent in files written before it existed.
    public var intents: Intents?

    /// Tool runs in flight (see `intents`).
    public struct Intents: Sendable, Hashable, Codable {
        /// os_user -> the account useradd was creating.
        public var accounts: [String: Account] = [:]
        /// os_user -> the supplementary groups useradd -G was given.
        public var accountGroups: [String: [String]] = [:]
        public var groups: [String] = []
        /// os_user -> groups usermod -aG was adding.
        public var memberships: [String: [String]] = [:]
        public init() {}
        public var isEmpty: Bool { accounts.isEmpty && groups.isEmpty && memberships.isEmpty }
    }

    /// Records as workstation's what an interrupted run's tools did (an account with the intended uid, a group, a
    /// membership now present), and drops the rest: the next plan does it again.
    public mutating func settleIntents(passwd: [PasswdEntry], groups hostGroups: [GroupEntry]) {
        guard let i = intents else { return }
        intents = nil
        let uids = Dictionary(passwd.map { ($0.name, $0.uid) }, uniquingKeysWith: { a, _ in a })
        let members = Dictionary(hostGroups.map { ($0.name, Set($0.members)) }, uniquingKeysWith: { a, _ in a })
        func added(_ user: String, _ g: String) {
            var list = addedMemberships[user] ?? []
            if !list.contains(g) { list.append(g) }
            addedMemberships[user] = list
        }
        for (name, a) in i.accounts.sorted(by: { $0.key < $1.key }) where uids[name] == a.uid {
            accounts[name] = Account(uid: a.uid, created: true)
            for g in i.accountGroups[name] ?? [] where members[g]?.contains(name) == true { added(name, g) }
        }
        for g in i.groups where members[g] != nil && !createdGroups.contains(g) { createdGroups.append(g) }
        for (user, gs) in i.memberships.sorted(by: { $0.key < $1.key }) {
            for g in gs where members[g]?.contains(user) == true { added(user, g) }
        }
    }
}
