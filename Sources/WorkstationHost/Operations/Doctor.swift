import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// One result of one health check.
public struct Finding: Sendable, Hashable, Codable {
    public enum Severity: String, Sendable, Codable, Comparable {
        case ok, warn, fail
        public static func < (a: Severity, b: Severity) -> Bool {
            [Severity.ok, .warn, .fail].firstIndex(of: a)! < [Severity.ok, .warn, .fail].firstIndex(of: b)!
        }
    }
    /// The check's name: `swap`, `memory-headroom`, `memory-now`, `headcount`, `account`, `budget`, `config-base`, `secret-file`,
    /// `forbidden-group`, `unit-enabled`, `unit-active`, `derived-file`, `drift`, `clone`, `kubeconfig`, `k8s-users` (a person who left the roster still in k8s_users), `kubectl`, `kubelogin`, `claude-login` (the shared Claude token overriding a login the person made; docs/auth.md).
    public var check: String
    /// The os_user it concerns; nil for host-wide checks.
    public var user: String?
    public var severity: Severity
    /// Lower-case sentence: what was found.
    public var message: String
    /// What to do, usually a command; nil for `ok`.
    public var fix: String?

    public init(_ check: String, user: String? = nil, _ severity: Severity, _ message: String, fix: String? = nil) {
        self.check = check
        self.user = user
        self.severity = severity
        self.message = message
        self.fix = fix
    }
}

/// Everything doctor found, with the plan it made (metrics reuse it for the pending-change count).
public struct DoctorReport: Sendable {
    public var findings: [Finding]
    public var plan: Plan
    public var ledger: CapacityLedger

    public var failures: Int { findings.filter { $0.severity == .fail }.count }
    public var warnings: Int { findings.filter { $0.severity == .warn }.count }
    public var healthy: Bool { failures == 0 }
}

/// `workstation doctor`: every health check of the host against the roster and of the machine-wide layers
/// (`setup-host --plan`, the reconcile timer, kubelogin, budget enforcement, token files; `Doctor+Host.swift`).
/// Reads only: account databases, `lstat(2)` of paths, ACLs (`getxattr(2)`), `/proc` (`net/tcp{,6}` too), the
/// cgroup tree under `/sys/fs/cgroup`, `/run/systemd/units`. On the live root only, when given a runner, it spawns
/// `nft list table inet workstation` and `systemctl is-active --quiet UNIT` for the front door's units and the
/// reconcile timer (systemd records no invocation for socket and timer units).
public struct Doctor: Sendable {
    public let root: HostRoot
    public let inputs: Inputs
    /// Days since 1970 for account expiry.
    public var today: Int = AccountState.today

    /// Files that hold a token or credential; each must be a regular file owned by the user, without group or
    /// other bits (spec section 7).

    /// Runs `nft list table inet workstation` for the firewall check; nil (metrics, tests without a fake): that
    /// one check is left out, since it is the only one that spawns.
    public var runner: (any CommandRunner)?

    public init(root: HostRoot, inputs: Inputs, runner: (any CommandRunner)? = nil) {
        self.root = root
        self.inputs = inputs
        self.runner = runner
    }

    /// Runs every check.
    /// - Throws: `ValidationFailure` for roster problems only the host shows; `ObserveError` for an unreadable state file.
    public func run() throws -> DoctorReport {
        let (plan, desired, snap) = try Engine.plan(inputs, root: root)
        let planner = Planner(settings: inputs.settings)
        let ledger = planner.capacityLedger(desired, snap)
        var f: [Finding] = []
        f += capacityChecks(ledger, snap)
        let baseFindings = configBaseHost()
        f += baseFindings
        let procs = ProcReader(root: root)
        let systemdRuns = FileManager.default.fileExists(atPath: root.path("/run/systemd/system"))
        for u in desired.users {
            f += userChecks(
                u,
                snap,
                planner: planner,
                checkBase: baseFindings.allSatisfy { $0.severity != .fail },
                procs: procs,
                systemdRuns: systemdRuns
            )
        }
        f += derivedFileChecks(desired, snap)
        f += enforcementChecks(desired, snap, planner: planner, systemdRuns: systemdRuns)
        f += setupHostChecks()
        f += reconcileTimerChecks(snap, systemdRuns: systemdRuns)
        f += kubeloginChecks()
        f += tokenFileChecks()
        f += frontDoorChecks(snap, systemdRuns: systemdRuns, procs: procs)
        f += driftChecks(plan)
        return DoctorReport(findings: f, plan: plan, ledger: ledger)
    }

    // MARK: host

    func capacityChecks(_ ledger: CapacityLedger, _ snap: HostSnapshot) -> [Finding] {
        let c = inputs.settings.capacity
        var out: [Finding] = []
        guard let m = snap.memory else {
            return [
                Finding(
                    "swap",
                    .warn,
                    "capacity unknown: \(root.path("/proc/meminfo")) is not readable, so swap and memory headroom were not checked",
                    fix: "run doctor on the host itself, where /proc is mounted"
                )
            ]
        }
        let addSwap =
            "fallocate -l \(formatByteSize(max(c.minSwap, 1 << 30))) /swapfile && chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile && echo '/swapfile none swap sw 0 0' >> /etc/fstab"
        if m.swapTotal == 0 {
            out.append(
                Finding(
                    "swap",
                    .fail,
                    "no swap: under memory pressure the kernel OOM-kills live sessions instead of slowing down (ADR-0007)",
                    fix: addSwap
                )
            )
        } else if m.swapTotal < c.minSwap {
            out.append(
                Finding(
                    "swap",
                    .fail,
                    "swap is \(humanBytes(m.swapTotal)), below capacity.min_swap \(humanBytes(c.minSwap))",
                    fix: "add \(humanBytes(c.minSwap - m.swapTotal)) or more: "
                        + addSwap.replacingOccurrences(of: "/swapfile", with: "/swapfile2")
                )
            )
        } else {
            out.append(Finding("swap", .ok, "swap \(humanBytes(m.swapTotal)) (minimum \(humanBytes(c.minSwap)))"))
        }
        if ledger.fits, let limit = ledger.limit {
            out.append(
                Finding(
                    "memory-headroom",
                    .ok,
                    "budgets fit, \(humanBytes(limit - ledger.committed)) to spare: \(ledger.arithmetic)"
                )
            )
        } else {
            out.append(
                Finding(
                    "memory-headroom",
                    .fail,
                    "memory budgets are overcommitted: \(ledger.arithmetic)",
                    fix:
                        "add swap or memory, or lower budgets (capacity.budgets in workstation.yaml or memory in the roster), then workstation apply"
                )
            )
        }
        // Right now: stalls on memory (PSI) and what is left. Warnings: they describe a moment, not the setup.
        if let full = ProcReader(root: root).pressure("memory")?.full, full.avg60 >= 0.05 {
            out.append(
                Finding(
                    "memory-now",
                    .warn,
                    "tasks stalled on memory \(Int((full.avg60 * 100).rounded()))% of the last minute (PSI full avg60)",
                    fix: "workstation status shows who holds the memory; add swap or memory, or lower budgets"
                )
            )
        } else if let avail = m.available, avail + m.swapFree < (m.total + m.swapTotal) / 20 {
            out.append(
                Finding(
                    "memory-now",
                    .warn,
                    "only \(humanBytes(avail + m.swapFree)) of memory and swap are available",
                    fix: "workstation status shows who holds the memory; add swap or memory, or lower budgets"
                )
            )
        } else {
            out.append(
                Finding(
                    "memory-now",
                    .ok,
                    "\(m.available.map { humanBytes($0) } ?? "?") memory and \(humanBytes(m.swapFree)) swap available"
                )
            )
        }
        if ledger.withinHeadcount {
            out.append(
                Finding(
                    "headcount",
                    .ok,
                    "\(ledger.lines.count) non-admin people, max_active_users \(c.maxActiveUsers)"
                )
            )
        } else {
            out.append(
                Finding(
                    "headcount",
                    .fail,
                    "the roster holds \(ledger.lines.count) non-admin people, over max_active_users \(c.maxActiveUsers)",
                    fix:
                        "offboard someone (workstation offboard NAME --stage cut) or raise capacity.max_active_users once the host can carry them"
                )
            )
        }
        return out
    }

    /// The config base must exist; per-user reachability is checked in `userChecks`.
    func configBaseHost() -> [Finding] {
        let base = inputs.settings.configBase
        var st = stat()
        if stat(root.path(base), &st) != 0 || st.st_mode & S_IFMT != S_IFDIR {
            return [
                Finding(
                    "config-base",
                    .fail,
                    "the config base \(base) is missing or not a directory",
                    fix: "clone the config base to \(base) (config_base in workstation.yaml)"
                )
            ]
        }
        return []
    }
}
