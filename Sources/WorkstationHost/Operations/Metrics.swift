import Foundation
import WorkstationCore

/// Renders the Prometheus text exposition format, version 0.0.4 (prometheus.io "Exposition formats"): per family a
/// `# HELP` and a `# TYPE` line, then its samples; label values escape `\`, `"` and newline.
public struct ExpositionWriter: Sendable {
    public private(set) var text = ""

    public init() {}

    public struct Sample: Sendable {
        public var labels: [(String, String)]
        public var value: String
        public init(_ labels: [(String, String)] = [], _ value: UInt64) {
            self.labels = labels
            self.value = String(value)
        }
        public init(_ labels: [(String, String)] = [], _ value: Int) {
            self.labels = labels
            self.value = String(value)
        }
        public init(_ labels: [(String, String)] = [], _ value: Double) {
            self.labels = labels
            self.value = value.isFinite ? String(value) : (value.isNaN ? "NaN" : value > 0 ? "+Inf" : "-Inf")
        }
    }

    /// Appends one family; a family without samples is left out entirely.
    public mutating func family(_ name: String, _ type: String, _ help: String, _ samples: [Sample]) {
        guard !samples.isEmpty else { return }
        text +=
            "# HELP \(name) \(help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
        text += "# TYPE \(name) \(type)\n"
        for s in samples {
            if s.labels.isEmpty {
                text += "\(name) \(s.value)\n"
            } else {
                let labels = s.labels.map { k, v in
                    "\(k)=\"\(v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\""
                }
                text += "\(name){\(labels.joined(separator: ","))} \(s.value)\n"
            }
        }
    }
}

/// `workstation metrics`: the build, the admission gate's figures, per-user resident memory, sessions and budgets,
/// people mid-offboarding, the front-door units, the last successful reconcile, pending changes and
/// doctor's counts, for node_exporter's textfile collector. Reads only; spawns nothing.
///
/// Host memory, swap and pressure stall figures are what node_exporter's `meminfo` and `pressure` collectors export
/// already (`node_memory_MemTotal_bytes`, `node_pressure_memory_stalled_seconds_total`...): they are written only
/// with `hostMetrics` (`--host-metrics`), for hosts that run the textfile collector without those.
public struct MetricsCollector: Sendable {
    public let root: HostRoot
    public let inputs: Inputs
    /// The release version for `workstation_build_info`; nil leaves the family out.
    public var version: String?
    /// Also write the host memory, swap and pressure families (node_exporter's meminfo and pressure collectors).
    public var hostMetrics: Bool

    public init(root: HostRoot, inputs: Inputs, version: String? = nil, hostMetrics: Bool = false) {
        self.root = root
        self.inputs = inputs
        self.version = version
        self.hostMetrics = hostMetrics
    }

    /// Units whose running state is exported (`workstation_unit_active`) where systemd runs: the firewall (setup-host
    /// enables it), and the dispatcher's socket and service and ttyd where deployed (enabled, or their runtime
    /// directory exists, as doctor decides). A service is active when systemd's `/run/systemd/units/invocation:UNIT`
    /// exists; systemd writes none for socket units, so the socket is active when its path is listening
    /// (`ProcReader.unixSocketListening`). Timers leave no trace outside systemd's memory: the reconcile timer is
    /// watched through `workstation_last_successful_reconcile_timestamp_seconds` instead.
    static let exportedUnits: [(unit: String, runtimeDirectory: String?, listening: String?)] = [
        (FrontDoor.firewallUnit, nil, nil),
        ("workstation-dispatch.socket", "/run/workstation-dispatch", "/run/workstation-dispatch/dispatch.sock"),
        ("workstation-dispatch.service", "/run/workstation-dispatch", nil),
        ("workstation-ttyd.service", "/run/workstation-ttyd", nil),
    ]

    /// The exposition text.
    /// - Throws: what `Doctor.run()` throws.
    public func render() throws -> String {
        let report = try Doctor(root: root, inputs: inputs).run()
        let procs = ProcReader(root: root)
        let snap = try Observer(root: root, settings: inputs.settings).observeBase()
        let planner = Planner(settings: inputs.settings)
        var w = ExpositionWriter()

        if let version {
            w.family(
                "workstation_build_info",
                "gauge",
                "Always 1; the version label is the workstation release that wrote these metrics.",
                [.init([("version", version)], 1)]
            )
        }
        if hostMetrics, let m = report.ledger.memory {
            w.family(
                "workstation_memory_total_bytes",
                "gauge",
                "Physical memory (MemTotal of /proc/meminfo).",
                [.init([], m.total)]
            )
            w.family(
                "workstation_memory_available_bytes",
                "gauge",
                "Memory available without swapping (MemAvailable).",
                m.available.map { [.init([], $0)] } ?? []
            )
            w.family("workstation_swap_total_bytes", "gauge", "Swap space (SwapTotal).", [.init([], m.swapTotal)])
            w.family("workstation_swap_free_bytes", "gauge", "Unused swap space (SwapFree).", [.init([], m.swapFree)])
        }
        w.family(
            "workstation_capacity_committed_bytes",
            "gauge",
            "Sum of the MemoryMax budgets of provisioned people.",
            [.init([], report.ledger.committed)]
        )
        w.family(
            "workstation_capacity_limit_bytes",
            "gauge",
            "Memory plus swap minus the reserve: what the admission gate allows.",
            report.ledger.limit.map { [.init([], $0)] } ?? []
        )
        w.family(
            "workstation_capacity_max_active_users",
            "gauge",
            "Most non-admin people the admission gate allows.",
            [.init([], inputs.settings.capacity.maxActiveUsers)]
        )

        if hostMetrics { pressureFamilies(procs, into: &w) }

        let usage = UserUsage.byUid(procs.processes())
        var rss: [ExpositionWriter.Sample] = []
        var sessions: [ExpositionWriter.Sample] = []
        var processes: [ExpositionWriter.Sample] = []
        var high: [ExpositionWriter.Sample] = []
        var hard: [ExpositionWriter.Sample] = []
        var swap: [ExpositionWriter.Sample] = []
        var tasks: [ExpositionWriter.Sample] = []
        var tasksMax: [ExpositionWriter.Sample] = []
        for e in inputs.roster.entries {
            let labels = [("user", e.osUser), ("tier", e.tier.rawValue)]
            if let acct = snap.account(e.osUser) {
                let u = usage[acct.uid] ?? UserUsage()
                rss.append(.init(labels, u.residentBytes))
                sessions.append(.init(labels, u.sessions))
                processes.append(.init(labels, u.processes))
                tasks.append(.init(labels, u.tasks))
            }
            // A kubernetes-placed person's budget is their workspace's limits in the cluster, not a slice here.
            guard e.placement(inputs.settings) == .host else { continue }
            if !e.isAdopted, let b = planner.budget(for: e) {
                high.append(.init(labels, b.high))
                hard.append(.init(labels, b.max))
                swap.append(.init(labels, b.swapMax))
            }
            if let n = planner.tasksMax(for: e) { tasksMax.append(.init(labels, n)) }
        }
        w.family("workstation_user_resident_memory_bytes", "gauge", "Sum of VmRSS over the person's processes.", rss)
        w.family(
            "workstation_user_sessions",
            "gauge",
            "Terminal sessions of the person (distinct session ids with a controlling terminal).",
            sessions
        )
        w.family("workstation_user_processes", "gauge", "Processes running as the person.", processes)
        w.family(
            "workstation_user_memory_high_bytes",
            "gauge",
            "MemoryHigh of the person's slice budget (throttling starts).",
            high
        )
        w.family(
            "workstation_user_memory_max_bytes",
            "gauge",
            "MemoryMax of the person's slice budget (hard limit).",
            hard
        )
        w.family("workstation_user_swap_max_bytes", "gauge", "MemorySwapMax of the person's slice budget.", swap)
        w.family(
            "workstation_user_tasks",
            "gauge",
            "Processes plus threads running as the person (what TasksMax counts).",
            tasks
        )
        w.family(
            "workstation_user_tasks_max",
            "gauge",
            "TasksMax of the person's slice and instance (capacity.tasks_max).",
            tasksMax
        )

        let leaving = OffboardingRow.pending(
            roster: inputs.roster,
            snapshot: snap,
            usage: usage,
            today: AccountState.today
        )
        w.family(
            "workstation_offboarding_pending",
            "gauge",
            "People who left the roster and are not archived yet (their account, home and recorded secrets remain).",
            [.init([], leaving.count)]
        )
        w.family(
            "workstation_offboarding_pending_user",
            "gauge",
            "1 per person mid-offboarding; next_stage is the stage to run next (cut, revoke, archive).",
            leaving.map { .init([("user", $0.osUser), ("next_stage", $0.nextStage.rawValue)], 1) }
        )
        w.family(
            "workstation_offboarding_stage_timestamp_seconds",
            "gauge",
            "When a stage of a person mid-offboarding was recorded (seconds since 1970).",
            leaving.flatMap { r in
                [("cut", r.done.contains(.cut) ? r.cutTime : nil), ("revoke", r.revokeTime)].compactMap { stage, t in
                    t.map { ExpositionWriter.Sample([("user", r.osUser), ("stage", stage)], $0) }
                }
            }
        )

        // Where systemd runs under the root (as doctor decides: /run/systemd/system exists there).
        if exists("/run/systemd/system") {
            let deployed = Self.exportedUnits.filter { u in
                u.runtimeDirectory == nil || snap.enabledUnits.contains(u.unit) || exists(u.runtimeDirectory!)
            }
            w.family(
                "workstation_unit_active",
                "gauge",
                "1 when the unit is active (a service: systemd's /run/systemd/units/invocation:UNIT exists; a socket: its path listens), 0 when not; only units deployed here.",
                deployed.map { u in
                    let active =
                        u.listening.map { procs.unixSocketListening($0) == true }
                        ?? exists("/run/systemd/units/invocation:\(u.unit)")
                    return .init([("unit", u.unit)], active ? 1 : 0)
                }
            )
        }

        w.family(
            "workstation_last_successful_reconcile_timestamp_seconds",
            "gauge",
            "When the last apply finished and verified clean (seconds since 1970); 0 when none has.",
            [.init([], snap.state.lastSuccessfulApply ?? 0)]
        )
        w.family(
            "workstation_pending_changes",
            "gauge",
            "Changes apply would run now (0 on a converged host).",
            [.init([], report.plan.actionable.count)]
        )
        w.family(
            "workstation_refusals",
            "gauge",
            "Safety gates that would refuse apply now.",
            [.init([], report.plan.refusals.count)]
        )
        w.family("workstation_doctor_failures", "gauge", "Failed doctor checks.", [.init([], report.failures)])
        w.family("workstation_doctor_warnings", "gauge", "Doctor warnings.", [.init([], report.warnings)])
        return w.text
    }

    /// PSI of memory and io (`/proc/pressure/*`): what node_exporter's pressure collector exports; `--host-metrics` only.
    private func pressureFamilies(_ procs: ProcReader, into w: inout ExpositionWriter) {
        var supported: [ExpositionWriter.Sample] = []
        var stalled: [ExpositionWriter.Sample] = []
        var ratio: [ExpositionWriter.Sample] = []
        for resource in ["memory", "io"] {
            let p = procs.pressure(resource)
            supported.append(.init([("resource", resource)], p == nil ? 0 : 1))
            for (kind, line) in [("some", p?.some), ("full", p?.full)] {
                guard let line else { continue }
                stalled.append(.init([("resource", resource), ("kind", kind)], line.totalSeconds))
                for (window, v) in [("10s", line.avg10), ("60s", line.avg60), ("300s", line.avg300)] {
                    ratio.append(.init([("resource", resource), ("kind", kind), ("window", window)], v))
                }
            }
        }
        w.family(
            "workstation_pressure_supported",
            "gauge",
            "1 when the kernel reports pressure stall information for the resource.",
            supported
        )
        w.family(
            "workstation_pressure_stalled_seconds_total",
            "counter",
            "Time tasks stalled on the resource since boot (PSI total; some: at least one task, full: all non-idle tasks).",
            stalled
        )
        w.family(
            "workstation_pressure_stall_ratio",
            "gauge",
            "Share of wall time stalled over the window (PSI avg10/avg60/avg300).",
            ratio
        )
    }

    private func exists(_ hostPath: String) -> Bool {
        var st = stat()
        return lstat(root.path(hostPath), &st) == 0
    }
}
