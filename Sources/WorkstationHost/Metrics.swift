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
        text += "# HELP \(name) \(help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
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

/// `workstation metrics`: host memory and swap, pressure stall information, per-user resident memory, sessions and
/// budgets, the last successful reconcile, pending changes and doctor's failure count, for node_exporter's textfile
/// collector. Reads only; spawns nothing.
public struct MetricsCollector: Sendable {
    public let root: HostRoot
    public let inputs: Inputs

    public init(root: HostRoot, inputs: Inputs) {
        self.root = root
        self.inputs = inputs
    }

    /// The exposition text.
    /// - Throws: what `Doctor.run()` throws.
    public func render() throws -> String {
        let report = try Doctor(root: root, inputs: inputs).run()
        let procs = ProcReader(root: root)
        let snap = try Observer(root: root, settings: inputs.settings).observeBase()
        let planner = Planner(settings: inputs.settings)
        var w = ExpositionWriter()

        if let m = report.ledger.memory {
            w.family("workstation_memory_total_bytes", "gauge", "Physical memory (MemTotal of /proc/meminfo).", [.init([], m.total)])
            w.family("workstation_memory_available_bytes", "gauge", "Memory available without swapping (MemAvailable).",
                     m.available.map { [.init([], $0)] } ?? [])
            w.family("workstation_swap_total_bytes", "gauge", "Swap space (SwapTotal).", [.init([], m.swapTotal)])
            w.family("workstation_swap_free_bytes", "gauge", "Unused swap space (SwapFree).", [.init([], m.swapFree)])
        }
        w.family("workstation_capacity_committed_bytes", "gauge", "Sum of the MemoryMax budgets of provisioned people.",
                 [.init([], report.ledger.committed)])
        w.family("workstation_capacity_limit_bytes", "gauge", "Memory plus swap minus the reserve: what the admission gate allows.",
                 report.ledger.limit.map { [.init([], $0)] } ?? [])
        w.family("workstation_capacity_max_active_users", "gauge", "Most non-admin people the admission gate allows.",
                 [.init([], inputs.settings.capacity.maxActiveUsers)])

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
        w.family("workstation_pressure_supported", "gauge", "1 when the kernel reports pressure stall information for the resource.", supported)
        w.family("workstation_pressure_stalled_seconds_total", "counter",
                 "Time tasks stalled on the resource since boot (PSI total; some: at least one task, full: all non-idle tasks).", stalled)
        w.family("workstation_pressure_stall_ratio", "gauge", "Share of wall time stalled over the window (PSI avg10/avg60/avg300).", ratio)

        let usage = UserUsage.byUid(procs.processes())
        var rss: [ExpositionWriter.Sample] = [], sessions: [ExpositionWriter.Sample] = [], processes: [ExpositionWriter.Sample] = []
        var high: [ExpositionWriter.Sample] = [], hard: [ExpositionWriter.Sample] = [], swap: [ExpositionWriter.Sample] = []
        var tasks: [ExpositionWriter.Sample] = [], tasksMax: [ExpositionWriter.Sample] = []
        for e in inputs.roster.entries {
            let labels = [("user", e.osUser), ("tier", e.tier.rawValue)]
            if let acct = snap.account(e.osUser) {
                let u = usage[acct.uid] ?? UserUsage()
                rss.append(.init(labels, u.residentBytes))
                sessions.append(.init(labels, u.sessions))
                processes.append(.init(labels, u.processes))
                tasks.append(.init(labels, u.tasks))
            }
            if !e.isAdopted, let b = planner.budget(for: e) {
                high.append(.init(labels, b.high))
                hard.append(.init(labels, b.max))
                swap.append(.init(labels, b.swapMax))
            }
            if let n = planner.tasksMax(for: e) { tasksMax.append(.init(labels, n)) }
        }
        w.family("workstation_user_resident_memory_bytes", "gauge", "Sum of VmRSS over the person's processes.", rss)
        w.family("workstation_user_sessions", "gauge", "Terminal sessions of the person (distinct session ids with a controlling terminal).", sessions)
        w.family("workstation_user_processes", "gauge", "Processes running as the person.", processes)
        w.family("workstation_user_memory_high_bytes", "gauge", "MemoryHigh of the person's slice budget (throttling starts).", high)
        w.family("workstation_user_memory_max_bytes", "gauge", "MemoryMax of the person's slice budget (hard limit).", hard)
        w.family("workstation_user_swap_max_bytes", "gauge", "MemorySwapMax of the person's slice budget.", swap)
        w.family("workstation_user_tasks", "gauge", "Processes plus threads running as the person (what TasksMax counts).", tasks)
        w.family("workstation_user_tasks_max", "gauge", "TasksMax of the person's slice and instance (capacity.tasks_max).", tasksMax)

        w.family("workstation_last_successful_reconcile_timestamp_seconds", "gauge",
                 "When the last apply finished and verified clean (seconds since 1970); 0 when none has.",
                 [.init([], snap.state.lastSuccessfulApply ?? 0)])
        w.family("workstation_pending_changes", "gauge", "Changes apply would run now (0 on a converged host).", [.init([], report.plan.actionable.count)])
        w.family("workstation_refusals", "gauge", "Safety gates that would refuse apply now.", [.init([], report.plan.refusals.count)])
        w.family("workstation_doctor_failures", "gauge", "Failed doctor checks.", [.init([], report.failures)])
        w.family("workstation_doctor_warnings", "gauge", "Doctor warnings.", [.init([], report.warnings)])
        return w.text
    }
}
