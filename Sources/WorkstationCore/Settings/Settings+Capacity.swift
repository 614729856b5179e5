import Foundation

/// The `capacity:` section of `workstation.yaml`: per-tier memory budgets and the admission gate's figures
/// (spec "Capacity & prerequisites", ADR-0007). Sizes are bytes; in YAML they take K, M, G, T suffixes (powers of
/// 1024), as `systemd.resource-control(5)` does.
///
/// ```yaml
/// capacity:
///   reserve: 12G            # kept back for the admins and the OS; never budgeted to a provisioned user
///   min_swap: 4G            # doctor fails below this
///   max_active_users: 5     # non-admin people the roster may hold before onboarding is refused
///   budgets:
///     power-user:      {high: 3G, max: 4G, swap_max: 2G}
///     namespace-owner: {high: 2G, max: 3G, swap_max: 1G}
///   tasks_max:              # processes + threads per person (TasksMax=, systemd.resource-control(5))
///     power-user: 8192
///     namespace-owner: 4096
/// ```
public struct CapacitySettings: Sendable, Hashable, Codable {
    /// Default budget of each provisioned tier; a roster entry's `memory` overrides it.
    public var budgets: [Tier: MemoryBudget] = [
        .powerUser: MemoryBudget(high: 3 << 30, max: 4 << 30, swapMax: 2 << 30),
        .namespaceOwner: MemoryBudget(high: 2 << 30, max: 3 << 30, swapMax: 1 << 30),
    ]
    /// Memory plus swap kept back for the admins and the OS, bytes.
    public var reserve: UInt64 = 12 << 30
    /// Swap below this is a doctor failure, bytes.
    public var minSwap: UInt64 = 4 << 30
    /// Most non-admin people the roster may hold when a new person is onboarded.
    public var maxActiveUsers: Int = 5
    /// `TasksMax=` of each provisioned tier's slice and instance: processes plus threads the person may run at once.
    /// Agents run many tool processes and threads each; a slice at its task limit fails every `fork(2)` and
    /// `clone(2)` ("cannot fork", "Resource temporarily unavailable") while memory looks fine. systemd's own default
    /// for a service is `DefaultTasksMax=` (15% of the kernel's pid/thread limit), which on a host with
    /// `kernel.pid_max` 32768 is 4915 for the whole instance.
    public var tasksMax: [Tier: Int] = [.powerUser: 8192, .namespaceOwner: 4096]

    public init() {}

    static let keys = ["budgets", "reserve", "min_swap", "max_active_users", "tasks_max"]

    /// Reads the `capacity:` mapping; every key is optional and keeps its default when absent.
    static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> CapacitySettings {
        var c = CapacitySettings()
        guard let r = KeyedReader(v, what: "capacity", known: keys, diags) else { return c }
        func size(_ key: String) -> UInt64? {
            guard let sv = r[key], let s = sv.string("capacity.\(key)", diags) else { return nil }
            guard let n = parseByteSize(s) else {
                diags.error(sv.location, "capacity.\(key) '\(printable(s))' is not a size like 512M or 4G")
                return nil
            }
            return n
        }
        if let n = size("reserve") { c.reserve = n }
        if let n = size("min_swap") { c.minSwap = n }
        if let v = r["max_active_users"], let n = v.integer("capacity.max_active_users", diags, range: 0...10000) {
            c.maxActiveUsers = n
        }
        if let v = r["budgets"],
            let br = KeyedReader(
                v,
                what: "capacity.budgets",
                known: [Tier.powerUser.rawValue, Tier.namespaceOwner.rawValue],
                diags
            )
        {
            for tier in [Tier.powerUser, .namespaceOwner] {
                if let tv = br[tier.rawValue],
                    let b = parseMemoryBudget(tv, what: "capacity.budgets.\(tier.rawValue)", diags)
                {
                    c.budgets[tier] = b
                }
            }
        }
        if let v = r["tasks_max"],
            let tr = KeyedReader(
                v,
                what: "capacity.tasks_max",
                known: [Tier.powerUser.rawValue, Tier.namespaceOwner.rawValue],
                diags
            )
        {
            for tier in [Tier.powerUser, .namespaceOwner] {
                // Below 64 a login shell and an agent cannot start; 4194304 is the kernel's PID_MAX_LIMIT.
                if let tv = tr[tier.rawValue],
                    let n = tv.integer("capacity.tasks_max.\(tier.rawValue)", diags, range: 64...4_194_304)
                {
                    c.tasksMax[tier] = n
                }
            }
        }
        return c
    }
}
