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
                    "\(ledger.headcount) non-admin people\(ledger.workspaces.isEmpty ? "" : " (\(ledger.workspaces.count) on kubernetes)"), max_active_users \(c.maxActiveUsers)"
                )
            )
        } else {
            out.append(
                Finding(
                    "headcount",
                    .fail,
                    "the roster holds \(ledger.headcount) non-admin people\(ledger.workspaces.isEmpty ? "" : " (\(ledger.workspaces.count) on kubernetes)"), over max_active_users \(c.maxActiveUsers)",
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

    // MARK: per user

    func userChecks(
        _ u: DesiredUser,
        _ snap: HostSnapshot,
        planner: Planner,
        checkBase: Bool,
        procs: ProcReader,
        systemdRuns: Bool
    ) -> [Finding] {
        let name = u.osUser
        guard let acct = snap.account(name) else {
            return [Finding("account", user: name, .fail, "\(name) has no account yet", fix: "workstation apply")]
        }
        var out: [Finding] = []
        let state = AccountState.of(name, snap, today: today)
        if state != .active {
            out.append(
                Finding(
                    "account",
                    user: name,
                    .warn,
                    "the account of \(name) is \(state.rawValue)",
                    fix: state == .noShadow
                        ? "pwconv (adds the missing /etc/shadow entries)"
                        : "workstation offboard \(name) or unlock it by hand if that was a mistake"
                )
            )
        }

        // Budget.
        if let b = planner.budget(for: u.entry) {
            let path = planner.sliceDropInPath(uid: acct.uid)
            let st = snap.path(path)
            if st.kind == .absent {
                out.append(
                    Finding(
                        "budget",
                        user: name,
                        .fail,
                        "no memory budget: \(path) is missing",
                        fix: "workstation apply"
                    )
                )
            } else if st.content != planner.sliceDropInContent(b, tasksMax: planner.tasksMax(for: u.entry)) {
                out.append(
                    Finding(
                        "budget",
                        user: name,
                        .fail,
                        "\(path) differs from the budget in the roster and settings",
                        fix: "workstation apply"
                    )
                )
            } else {
                out.append(
                    Finding(
                        "budget",
                        user: name,
                        .ok,
                        "MemoryHigh \(humanBytes(b.high)), MemoryMax \(humanBytes(b.max)), MemorySwapMax \(humanBytes(b.swapMax))"
                            + (planner.tasksMax(for: u.entry).map { ", TasksMax \($0)" } ?? "")
                    )
                )
            }
        }

        // Config base reachable with the user's own credentials.
        if checkBase {
            let access = AccessCheck(uid: acct.uid, gids: snap.gids(of: name))
            let base = inputs.settings.configBase
            var targets = [base]
            for item in inputs.settings.inheritedItems
            where FileManager.default.fileExists(atPath: root.path(joinPath(base, item))) {
                targets.append(joinPath(base, item))
            }
            if let block = targets.lazy.compactMap({ access.blocker($0, root: self.root) }).first {
                let perm = block.lacks.hasPrefix("search") ? "x" : "rx"
                out.append(
                    Finding(
                        "config-base",
                        user: name,
                        .fail,
                        "\(name) cannot reach the config base: \(block.path) lacks \(block.lacks) for them",
                        fix: "setfacl -m g:\(inputs.settings.accounts.group):\(perm) \(block.path)"
                    )
                )
            } else {
                out.append(Finding("config-base", user: name, .ok, "\(name) can read \(base)"))
            }
        }

        // Secret files.
        let obs = Observer(root: root, settings: inputs.settings)
        for dir in [".claude", ".kube"] {
            let st = obs.pathState(joinPath(acct.home, dir))
            if st.kind == .symlink {
                out.append(
                    Finding(
                        "secret-file",
                        user: name,
                        .warn,
                        "\(joinPath(acct.home, dir)) is a symlink; the secret files below it were not checked",
                        fix: "make \(joinPath(acct.home, dir)) a real directory owned by \(name), mode 0700"
                    )
                )
            }
        }
        var secretsOK = true
        for rel in inputs.settings.homeSecretFiles {
            let path = joinPath(acct.home, rel)
            if rel.hasPrefix(".claude/") && obs.pathState(joinPath(acct.home, ".claude")).kind == .symlink { continue }
            if rel.hasPrefix(".kube/") && obs.pathState(joinPath(acct.home, ".kube")).kind == .symlink { continue }
            let st = obs.pathState(path)
            switch st.kind {
            case .absent: continue
            case .file: break
            default:
                secretsOK = false
                out.append(
                    Finding(
                        "secret-file",
                        user: name,
                        .fail,
                        "\(path) is a \(st.kind.rawValue), not a regular file",
                        fix: "replace it with a regular file owned by \(name), mode 0600"
                    )
                )
                continue
            }
            if st.uid != acct.uid {
                secretsOK = false
                out.append(
                    Finding(
                        "secret-file",
                        user: name,
                        .fail,
                        "\(path) is owned by uid \(st.uid), not \(name)",
                        fix: "chown \(name): \(path)"
                    )
                )
            }
            if st.mode & 0o077 != 0 {
                secretsOK = false
                out.append(
                    Finding(
                        "secret-file",
                        user: name,
                        .fail,
                        "\(path) has mode \(octal(st.mode & 0o7777)): group or others can read it",
                        fix: "chmod go-rwx \(path)"
                    )
                )
            }
        }
        if secretsOK { out.append(Finding("secret-file", user: name, .ok, "secret files are private to \(name)")) }

        // Both the shared Claude token and an own login: the variable wins over the login (docs/auth.md).
        if let c = inputs.settings.auth.claude, c.token != nil,
            obs.pathState(joinPath(acct.home, c.envFile)).kind == .file,
            obs.pathState(joinPath(acct.home, ".claude/.credentials.json")).kind == .file
        {
            out.append(
                Finding(
                    "claude-login",
                    user: name,
                    .warn,
                    "\(name) has logged in to Claude (~/.claude/.credentials.json) but ~/\(c.envFile) still sets the shared CLAUDE_CODE_OAUTH_TOKEN, which overrides that login",
                    fix:
                        "\(name) removes ~/\(c.envFile) to use their own login (and claude_login: own-login in the roster keeps it from being written again)"
                )
            )
        }

        // Admin rights.
        var forbidden = false
        for g in inputs.settings.accounts.forbiddenGroups {
            guard let grp = snap.group(g) else { continue }
            if grp.members.contains(name) || acct.gid == grp.gid {
                forbidden = true
                out.append(
                    Finding(
                        "forbidden-group",
                        user: name,
                        .fail,
                        "\(name) (\(u.entry.tier.rawValue)) is in group \(g), which only an admin may hold",
                        fix: acct.gid == grp.gid ? "usermod -g \(name) \(name)" : "gpasswd -d \(name) \(g)"
                    )
                )
            }
        }
        if !forbidden {
            out.append(Finding("forbidden-group", user: name, .ok, "no sudo, docker or shared-code membership"))
        }

        // Units.
        for unit in inputs.settings.units {
            let instance = unit.instance(name)
            guard snap.enabledUnits.contains(instance) else {
                out.append(
                    Finding("unit-enabled", user: name, .fail, "\(instance) is not enabled", fix: "workstation apply")
                )
                continue
            }
            out.append(Finding("unit-enabled", user: name, .ok, "\(instance) is enabled"))
            guard systemdRuns else { continue }
            switch procs.unitActive(instance, uid: acct.uid) {
            case true?: out.append(Finding("unit-active", user: name, .ok, "\(instance) is running"))
            case false?:
                out.append(
                    Finding(
                        "unit-active",
                        user: name,
                        .fail,
                        "\(instance) is enabled but not running",
                        fix: "systemctl start \(instance); journalctl -u \(instance) -n 50 says why it stopped"
                    )
                )
            case nil:
                out.append(
                    Finding(
                        "unit-active",
                        user: name,
                        .warn,
                        "cannot tell whether \(instance) runs: no cgroup v2 tree under /sys/fs/cgroup",
                        fix: "systemctl is-active \(instance)"
                    )
                )
            }
        }

        // Clone and kubeconfig, where configured (no infra_repo or kubernetes section: nothing to check).
        let (clone, target) = CloneState.observe(home: acct.home, root: root)
        switch inputs.settings.infraRepo.source(for: u.entry) == nil ? nil : clone {
        case nil:
            out.append(
                Finding(
                    "clone",
                    user: name,
                    .ok,
                    "infra clones are off (no infra_repo.url in settings, no repo: in the roster)"
                )
            )
        case .present: out.append(Finding("clone", user: name, .ok, "\(joinPath(acct.home, "code")) is a clone"))
        case .kept:
            out.append(
                Finding(
                    "clone",
                    user: name,
                    .warn,
                    "\(joinPath(acct.home, "code")) is kept as it was (\(target.map { "a symlink to \($0)" } ?? "not a git clone")); workstation never replaces it",
                    fix: "the opt-in cutover replaces it with \(name)'s own locked clone"
                )
            )
        case .missing:
            out.append(
                Finding(
                    "clone",
                    user: name,
                    .fail,
                    "\(joinPath(acct.home, "code")) is missing: \(name) has no infra clone",
                    fix: "workstation apply provisions the locked clone"
                )
            )
        }
        if inputs.settings.kubernetes == nil {
            out.append(
                Finding("kubeconfig", user: name, .ok, "kubeconfigs are off (no kubernetes section in settings)")
            )
        } else if obs.pathState(joinPath(acct.home, ".kube/config")).kind == .absent {
            out.append(
                Finding(
                    "kubeconfig",
                    user: name,
                    .fail,
                    "\(joinPath(acct.home, ".kube/config")) is missing: kubectl has no identity for \(name)",
                    fix: "workstation apply installs the per-tier OIDC kubeconfig"
                )
            )
        } else {
            out.append(Finding("kubeconfig", user: name, .ok, "\(joinPath(acct.home, ".kube/config")) is present"))
        }
        return out
    }

    // MARK: front door

    /// The dispatcher's socket (always) and ttyd's (where it is deployed).
    static let frontSockets = [
        (
            dir: "/run/workstation-dispatch", socket: "dispatch.sock", unit: "workstation-dispatch.socket",
            required: true
        ),
        (dir: "/run/workstation-ttyd", socket: "ttyd.sock", unit: "workstation-ttyd.service", required: false),
    ]

    /// The front door (issue 16, docs/dispatch.md): where systemd runs, the unix sockets of the dispatcher and ttyd
    /// (a root-owned directory nobody else can write, a socket nobody else can use), the units that hold them and
    /// the firewall, and the nft table; wherever `/proc/net/tcp` is readable, every routed port of dispatch.json
    /// held by its person's account and no instance port listening beyond loopback.
    func frontDoorChecks(_ snap: HostSnapshot, systemdRuns: Bool, procs: ProcReader) -> [Finding] {
        var out: [Finding] = []
        if systemdRuns {
            var units = [FrontDoor.firewallUnit]
            for s in Self.frontSockets {
                let deployed = s.required || snap.enabledUnits.contains(s.unit) || lstatKind(s.dir) != nil
                guard deployed else { continue }
                units.append(s.unit)
                out += socketChecks(dir: s.dir, socket: s.socket, unit: s.unit, groups: snap.groups)
            }
            for unit in units.sorted() {
                if unitActive(unit, procs: procs) {
                    out.append(Finding("front-unit", .ok, "\(unit) is active"))
                } else {
                    out.append(
                        Finding(
                            "front-unit",
                            .fail,
                            "\(unit) is not active",
                            fix: unit == FrontDoor.firewallUnit
                                ? "workstation setup-host (installs, enables and starts it); journalctl -u \(unit) -n 50 says why it stopped"
                                : "systemctl enable --now \(unit) (docs/dispatch.md); journalctl -u \(unit) -n 50 says why it stopped"
                        )
                    )
                }
            }
            if let runner {
                let listed = try? runner.run([FrontDoor.nft, "list", "table", "inet", FrontDoor.table])
                if listed?.status == 0 {
                    out.append(Finding("firewall", .ok, "nft table inet \(FrontDoor.table) is loaded"))
                } else {
                    out.append(
                        Finding(
                            "firewall",
                            .fail,
                            "nft table inet \(FrontDoor.table) is not loaded: every account can connect to the instance ports"
                                + (listed.map {
                                    $0.stderr.isEmpty
                                        ? ""
                                        : " (\(printable($0.stderr.trimmingCharacters(in: .whitespacesAndNewlines))))"
                                } ?? " (nft could not be run)"),
                            fix:
                                "systemctl restart \(FrontDoor.firewallUnit) (workstation setup-host installs it); nft -c -f \(FrontDoor.rulesetPath) shows what is wrong"
                        )
                    )
                }
            }
        }
        out += portChecks(snap, procs: procs)
        return out
    }

    /// Whether `unit` is active: `systemctl is-active` on the live root (the runner given); else a service's
    /// invocation record (`/run/systemd/units/invocation:UNIT`, which systemd writes for services but not for
    /// sockets or timers), and for a socket unit of the front door, its socket listening (`/proc/net/unix`).
    func unitActive(_ unit: String, procs: ProcReader) -> Bool {
        if let runner, root.isSystem, let r = try? runner.run(["systemctl", "is-active", "--quiet", unit]) {
            return r.status == 0
        }
        if lstatKind("/run/systemd/units/invocation:\(unit)") != nil { return true }
        if let s = Self.frontSockets.first(where: { $0.unit == unit && unit.hasSuffix(".socket") }) {
            return procs.unixSocketListening(joinPath(s.dir, s.socket)) == true
        }
        return false
    }

    private func lstatKind(_ hostPath: String) -> mode_t? {
        var st = stat()
        return lstat(root.path(hostPath), &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    /// A socket in a directory: the directory root-owned and writable by root alone (nobody else can put a socket
    /// there or rename one away), the socket root-owned with no bits for others (`unix(7)`: connecting needs write
    /// permission on the socket).
    func socketChecks(dir: String, socket: String, unit: String, groups: [GroupEntry]) -> [Finding] {
        let path = joinPath(dir, socket)
        var st = stat()
        guard lstat(root.path(dir), &st) == 0 else {
            return [
                Finding(
                    "front-socket",
                    .fail,
                    "\(dir) is missing: \(unit) does not hold its socket",
                    fix: "systemctl enable --now \(unit) (docs/dispatch.md)"
                )
            ]
        }
        let recreate = "rm -rf \(dir) && systemctl restart \(unit) (the unit creates it root-owned, 0755)"
        if st.st_mode & S_IFMT != S_IFDIR {
            return [Finding("front-socket", .fail, "\(dir) is not a directory", fix: recreate)]
        }
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            return [
                Finding(
                    "front-socket",
                    .fail,
                    "\(dir) is owned by uid \(st.st_uid) with mode \(octal(UInt32(st.st_mode) & 0o7777)): \(st.st_uid != 0 ? "its owner" : "group or others") can replace the socket",
                    fix: recreate
                )
            ]
        }
        guard lstat(root.path(path), &st) == 0 else {
            return [
                Finding(
                    "front-socket",
                    .fail,
                    "\(path) is missing",
                    fix: "systemctl restart \(unit) (docs/dispatch.md)"
                )
            ]
        }
        if st.st_mode & S_IFMT != S_IFSOCK {
            return [
                Finding(
                    "front-socket",
                    .fail,
                    "\(path) is not a socket",
                    fix: "rm \(path) && systemctl restart \(unit)"
                )
            ]
        }
        if st.st_uid != 0 || st.st_mode & 0o007 != 0 {
            return [
                Finding(
                    "front-socket",
                    .fail,
                    "\(path) is owned by uid \(st.st_uid) with mode \(octal(UInt32(st.st_mode) & 0o7777)): \(st.st_uid != 0 ? "its owner" : "every account") can connect",
                    fix:
                        "set SocketUser=root and SocketMode=0660 (or ttyd's socket owner and mode) as shipped, then systemctl restart \(unit)"
                )
            ]
        }
        let group = groups.first { $0.gid == Int(st.st_gid) }?.name ?? String(st.st_gid)
        return [
            Finding(
                "front-socket",
                .ok,
                "\(path) is root:\(group) \(octal(UInt32(st.st_mode) & 0o7777)) in a root-owned directory"
            )
        ]
    }

    /// Every port dispatch.json routes must be listened on by the person's own account on loopback only; no
    /// port of a unit's range may listen beyond loopback (`/proc/net/tcp{,6}`).
    func portChecks(_ snap: HostSnapshot, procs: ProcReader) -> [Finding] {
        guard let listeners = procs.tcpListeners() else { return [] }
        var out: [Finding] = []
        let names = Dictionary(snap.passwd.map { ($0.uid, $0.name) }, uniquingKeysWith: { a, _ in a })
        func who(_ uid: Int) -> String { names[uid].map { "\($0) (uid \(uid))" } ?? "uid \(uid)" }
        var reported = Set<Int>()
        if let data = root.read(inputs.settings.derived.dispatch), let map = try? DispatchMap.decode(data) {
            // A workspace's port is its Service's in the cluster, not one on this host.
            for name in map.users.keys.sorted() where map.users[name]!.host == nil {
                let u = map.users[name]!
                var ports = u.ports.map { (port: $0.value, instance: "\($0.key)\(u.osUser).service") }.sorted {
                    $0.port < $1.port
                }
                if !ports.contains(where: { $0.port == u.port }) {
                    ports.insert((u.port, inputs.settings.primaryUnit.instance(u.osUser)), at: 0)
                }
                // No account (an admin declared in settings, not on this host): nothing of theirs can listen.
                guard let uid = snap.account(u.osUser)?.uid else { continue }
                for (port, instance) in ports {
                    let held = listeners.filter { $0.port == port }
                    let wrong = held.filter { $0.uid != uid }
                    let open = held.filter { !$0.loopback }
                    if held.isEmpty {
                        out.append(
                            Finding(
                                "routed-port",
                                user: u.osUser,
                                .warn,
                                "nobody listens on port \(port) routed to \(u.osUser): while \(instance) is down, another account could bind it",
                                fix: "systemctl start \(instance)"
                            )
                        )
                    } else if let w = wrong.first {
                        reported.insert(port)
                        out.append(
                            Finding(
                                "routed-port",
                                user: u.osUser,
                                .fail,
                                "port \(port) routed to \(u.osUser) is held by \(who(w.uid)) on \(w.address), not by \(u.osUser)",
                                fix:
                                    "end that process (ss -ltnpe 'sport = :\(port)' names it), then systemctl restart \(instance); the dispatcher refuses the route (502) until then"
                            )
                        )
                    } else if let o = open.first {
                        reported.insert(port)
                        out.append(
                            Finding(
                                "routed-port",
                                user: u.osUser,
                                .fail,
                                "port \(port) of \(u.osUser) listens on \(o.address), beyond loopback",
                                fix:
                                    "make \(instance) bind 127.0.0.1 only (t3 serve --host 127.0.0.1), then systemctl restart \(instance)"
                            )
                        )
                    } else {
                        out.append(
                            Finding(
                                "routed-port",
                                user: u.osUser,
                                .ok,
                                "port \(port) is held by \(u.osUser) on loopback"
                            )
                        )
                    }
                }
            }
        }
        let ranges = FrontDoor.portRanges(inputs.settings.units)
        for l in listeners
        where !l.loopback && !reported.contains(l.port) && ranges.contains(where: { $0.contains(l.port) }) {
            reported.insert(l.port)
            out.append(
                Finding(
                    "instance-port",
                    .fail,
                    "port \(l.port), in the instance port range, listens on \(l.address) (held by \(who(l.uid)))",
                    fix: "bind it to 127.0.0.1 only, or end it (ss -ltnpe 'sport = :\(l.port)' names the process)"
                )
            )
        }
        return out
    }

    // MARK: derived files and drift

    func derivedFileChecks(_ d: DesiredState, _ snap: HostSnapshot) -> [Finding] {
        [(inputs.settings.derived.ttydUserMap, d.ttydUserMap), (inputs.settings.derived.dispatch, d.dispatch)].map {
            path,
            content in
            let st = snap.path(path)
            if st.kind == .file && st.content == content {
                return Finding("derived-file", .ok, "\(path) matches the roster")
            }
            return Finding(
                "derived-file",
                .fail,
                st.kind == .absent ? "\(path) is missing" : "\(path) is out of sync with the roster",
                fix: "workstation apply"
            )
        }
    }

    /// One finding for a plan's actionable changes: `converged` when there are none, else a failure naming the
    /// first five.
    static func pending(_ check: String, _ todo: [Change], what: String, converged: String, fix: String) -> Finding {
        guard !todo.isEmpty else { return Finding(check, .ok, converged) }
        let shown = todo.prefix(5).map(\.summary).joined(separator: "; ")
        return Finding(
            check,
            .fail,
            "\(todo.count) \(what)\(todo.count == 1 ? "" : "s") pending: \(shown)\(todo.count > 5 ? "; ..." : "")",
            fix: fix
        )
    }

    func driftChecks(_ plan: Plan) -> [Finding] {
        var out = [
            Self.pending(
                "drift",
                plan.actionable,
                what: "change",
                converged: "the plan is empty: the host matches the roster",
                fix: "workstation plan, then workstation apply"
            )
        ]
        for r in plan.refusals {
            out.append(
                Finding(
                    "drift",
                    .fail,
                    "apply would be refused by \(r.gate): \(r.message)",
                    fix: "see the refusal; workstation plan shows it"
                )
            )
        }
        for c in plan.changes where c.kind == .conflict {
            out.append(Finding("drift", user: c.user, .warn, "conflict left alone: \(c.summary)", fix: c.reason))
        }
        // Cluster access of people who left the roster: a failure of its own, not drift.
        for c in plan.changes where c.id.hasPrefix("k8s-users-left:") {
            out.append(
                Finding(
                    "k8s-users",
                    user: c.user,
                    .fail,
                    c.summary,
                    fix: [c.reason, c.command].compactMap { $0 }.joined(
                        separator: "; and delete what render rbac made: "
                    )
                )
            )
        }
        for c in plan.changes
        where c.kind == .pending && !c.id.hasPrefix("violation:") && !c.id.hasPrefix("k8s-users-left:") {
            out.append(Finding("drift", user: c.user, .warn, c.summary, fix: c.command))
        }
        return out
    }
}
