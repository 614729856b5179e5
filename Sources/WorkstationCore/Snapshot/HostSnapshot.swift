import Foundation

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
