import Foundation
import WorkstationCore

/// One row of `workstation status`: one roster person.
public struct StatusRow: Sendable, Hashable, Codable {
    public var osUser: String
    public var tier: Tier
    public var uid: Int?
    public var account: AccountState
    /// Instance -> `active`, `inactive`, `enabled` (running state unknown) or `disabled`.
    public var units: [String: String]
    /// State of the primary (t3) instance.
    public var unit: String
    /// Port of the primary instance.
    public var port: Int?
    public var sessions: Int
    public var processes: Int
    /// Processes plus threads running as the person (what `TasksMax=` counts).
    public var tasks: Int = 0
    /// `TasksMax=` of their slice (`capacity.tasks_max`); nil for admins.
    public var tasksMax: Int?
    /// Sum of `VmRSS` over the person's processes, bytes.
    public var residentBytes: UInt64
    /// `MemoryMax` of their budget, bytes; nil for admins (not budgeted).
    public var budgetBytes: UInt64?
    /// residentBytes / budgetBytes, 0...; nil without a budget.
    public var budgetShare: Double?
    public var clone: CloneState?
    /// Where the person's workspace runs; a kubernetes-placed person's UNIT is `kubernetes` and their host figures
    /// (resident memory, tasks) are not theirs to show: the cluster's are (docs/scale-out.md).
    public var placement: PersonPlacement = .host
}

/// Builds the status table. Reads only (account databases, `/proc`, unit symlinks and cgroups); spawns nothing.
public struct StatusReader: Sendable {
    public let root: HostRoot
    public let inputs: Inputs
    public var today: Int = AccountState.today

    public init(root: HostRoot, inputs: Inputs) {
        self.root = root
        self.inputs = inputs
    }

    /// One row per roster entry, in roster order.
    /// - Throws: `ValidationFailure` for roster problems only the host shows; `ObserveError` for an unreadable state file.
    public func rows() throws -> [StatusRow] {
        let observer = Observer(root: root, settings: inputs.settings)
        let (snap, desired) = try observer.observe(roster: inputs.roster)
        let planner = Planner(settings: inputs.settings)
        let procs = ProcReader(root: root)
        let usage = UserUsage.byUid(procs.processes())
        let primary = inputs.settings.primaryUnit
        return inputs.roster.entries.map { e in
            let acct = snap.account(e.osUser)
            let du = desired.users.first { $0.osUser == e.osUser }
            let use = acct.flatMap { usage[$0.uid] } ?? UserUsage()
            let budget = e.isAdopted ? nil : planner.budget(for: e)?.max
            var units: [String: String] = [:]
            for unit in inputs.settings.units where !(e.isAdopted && unit != primary) {
                let instance = unit.instance(e.osUser)
                let active = acct.flatMap { procs.unitActive(instance, uid: $0.uid) }
                units[instance] =
                    active == true
                    ? "active"
                    : !snap.enabledUnits.contains(instance) ? "disabled" : active == false ? "inactive" : "enabled"
            }
            var row = StatusRow(
                osUser: e.osUser,
                tier: e.tier,
                uid: acct?.uid ?? du?.uid,
                account: AccountState.of(e.osUser, snap, today: today),
                units: units,
                unit: units[primary.instance(e.osUser)] ?? "disabled",
                port: desired.identities.first { $0.osUser == e.osUser }?.ports[primary.template],
                sessions: use.sessions,
                processes: use.processes,
                residentBytes: use.residentBytes,
                budgetBytes: budget,
                budgetShare: budget.map { $0 == 0 ? 0 : Double(use.residentBytes) / Double($0) },
                clone: acct.map { CloneState.observe(home: $0.home, root: root).0 }.flatMap {
                    // No clone is owed when infra clones are off for them: nothing there is "-", not "missing".
                    $0 == .missing && inputs.settings.infraRepo.source(for: e) == nil ? nil : $0
                }
            )
            row.tasks = use.tasks
            row.tasksMax = planner.tasksMax(for: e)
            if e.placement(inputs.settings) == .kubernetes {
                row.placement = .kubernetes
                row.units = [:]
                row.unit = "kubernetes"
                row.port = nil
                row.budgetBytes = nil
                row.budgetShare = nil
                row.tasksMax = nil
            }
            return row
        }
    }

    /// Everyone mid-offboarding (`OffboardingRow.pending`): left the roster, account still recorded, not archived.
    /// - Throws: `ObserveError` for an unreadable state file.
    public func offboarding() throws -> [OffboardingRow] {
        let snap = try Observer(root: root, settings: inputs.settings).observeBase()
        return OffboardingRow.pending(
            roster: inputs.roster,
            snapshot: snap,
            usage: UserUsage.byUid(ProcReader(root: root).processes()),
            today: today
        )
    }

    /// The table: a header and one aligned line per row; every cell escaped and kept on its line (`printable`).
    public static func table(_ rows: [StatusRow]) -> String {
        let header = [
            "USER", "TIER", "ACCOUNT", "UNIT", "PORT", "SESSIONS", "RESIDENT", "BUDGET", "SHARE", "TASKS", "CLONE",
        ]
        let lines = rows.map { r in
            [
                r.osUser, r.tier.rawValue, r.account.rawValue, r.unit, r.port.map(String.init) ?? "-",
                String(r.sessions),
                humanBytes(r.residentBytes), r.budgetBytes.map(humanBytes) ?? "-",
                r.budgetShare.map { "\(Int(($0 * 100).rounded()))%" } ?? "-",
                "\(r.tasks)/\(r.tasksMax.map(String.init) ?? "-")", r.clone?.rawValue ?? "-",
            ].map { printable($0) }
        }
        var widths = header.map(\.count)
        for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
        func fmt(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ")
        }
        return ([fmt(header)] + lines.map(fmt)).joined(separator: "\n") + "\n"
    }

    /// JSON: `{"users": [{"os_user", "tier", "uid", "account", "unit", "units", "port", "sessions", "processes",
    /// "resident_bytes", "budget_bytes", "budget_share", "tasks", "tasks_max", "clone", "placement"}], "offboarding":
    /// [OffboardingRow.jsonObject]}`; `options` (this run's `--roster`/`--settings`/`--root`) is appended to each
    /// offboarding `command`.
    public static func json(_ rows: [StatusRow], offboarding: [OffboardingRow] = [], options: String = "") -> String {
        jsonText(jsonObject(rows, offboarding: offboarding, options: options))
    }

    /// `json`'s object, for a caller that adds fields (the CLI's JSON envelope, docs/json.md).
    public static func jsonObject(
        _ rows: [StatusRow],
        offboarding: [OffboardingRow] = [],
        options: String = ""
    ) -> [String: Any] {
        let users: [[String: Any]] = rows.map { r in
            [
                "os_user": r.osUser, "tier": r.tier.rawValue, "uid": r.uid ?? NSNull(), "account": r.account.rawValue,
                "unit": r.unit,
                "units": r.units, "port": r.port ?? NSNull(), "sessions": r.sessions, "processes": r.processes,
                "resident_bytes": r.residentBytes, "budget_bytes": r.budgetBytes ?? NSNull(),
                "budget_share": r.budgetShare ?? NSNull(), "clone": r.clone?.rawValue ?? NSNull(),
                "tasks": r.tasks, "tasks_max": r.tasksMax ?? NSNull(), "placement": r.placement.rawValue,
            ]
        }
        return ["users": users, "offboarding": offboarding.map { $0.jsonObject(options: options) }]
    }
}
