import Foundation
import WorkstationCore

/// The machine-wide checks of `doctor`: what `setup-host --plan` would change, the reconcile timer, kubelogin, whether
/// the kernel enforces the budgets the drop-ins declare, and the integrations' token files. Reads only.
extension Doctor {
    /// True when `hostPath` exists under the root (any kind, links not followed).
    func exists(_ hostPath: String) -> Bool {
        var st = stat()
        return lstat(root.path(hostPath), &st) == 0
    }

    /// Everything `setup-host --plan` would change: a pending machine-wide change fails like apply's drift does;
    /// items setup-host leaves to an operator (packages it cannot install, conflicts) are warnings.
    func setupHostChecks() -> [Finding] {
        let plan: Plan
        do {
            (plan, _) = try SetupHostEngine.plan(inputs, root: root, options: SetupHostOptions())
        } catch let failure as ValidationFailure {
            return [
                Finding(
                    "setup-host",
                    .fail,
                    "setup-host refuses to run: \(failure.diagnostics.map(\.description).joined(separator: "; "))",
                    fix: "fix the files named, then workstation setup-host"
                )
            ]
        } catch {
            return [
                Finding(
                    "setup-host",
                    .fail,
                    "setup-host cannot plan: \(error)",
                    fix: "workstation setup-host --plan shows the error"
                )
            ]
        }
        var out = [
            Self.pending(
                "setup-host",
                plan.actionable,
                what: "machine-wide change",
                converged: "the machine-wide layers match setup-host's plan",
                fix: "workstation setup-host (workstation setup-host --plan shows each)"
            )
        ]
        for c in plan.changes where !c.kind.isActionable || !c.safety.runsInApply {
            out.append(Finding("setup-host", user: c.user, .warn, c.summary, fix: c.command ?? c.reason))
        }
        for r in plan.refusals {
            out.append(Finding("setup-host", .fail, "setup-host would be refused by \(r.gate): \(r.message)"))
        }
        return out
    }

    /// The reconcile timer setup-host installs: enabled, and where systemd runs, active (`/run/systemd/units`).
    func reconcileTimerChecks(_ snap: HostSnapshot, systemdRuns: Bool) -> [Finding] {
        let timer = ReconcileUnits.timerName
        guard snap.enabledUnits.contains(timer) || exists("/etc/systemd/system/timers.target.wants/\(timer)") else {
            return [
                Finding(
                    "reconcile-timer",
                    .fail,
                    "\(timer) is not enabled: nothing applies the roster between operator runs",
                    fix: "workstation setup-host (installs and enables it)"
                )
            ]
        }
        guard systemdRuns else { return [Finding("reconcile-timer", .ok, "\(timer) is enabled")] }
        if unitActive(timer, procs: ProcReader(root: root)) {
            return [Finding("reconcile-timer", .ok, "\(timer) is enabled and active")]
        }
        return [
            Finding("reconcile-timer", .fail, "\(timer) is enabled but not active", fix: "systemctl start \(timer)")
        ]
    }

    /// kubelogin, which every generated kubeconfig runs (`kubectl oidc-login`), where kubectl finds plugins: an
    /// executable `kubectl-oidc_login` in a directory of the default `PATH`. Only when kubeconfigs are generated.
    ///
    /// Also kubectl itself (not in Debian 12's main archive: the Kubernetes apt repository `pkgs.k8s.io`,
    /// docs/auth.md); kubelogin is not needed with `kubernetes.auth: service-account-token`.
    func kubeloginChecks() -> [Finding] {
        guard let k = inputs.settings.kubernetes, k.kubeconfigConfigured else { return [] }
        let dirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        var out: [Finding] = []
        if let found = dirs.map({ "\($0)/kubectl" }).first(where: { access(root.path($0), X_OK) == 0 }) {
            out.append(Finding("kubectl", .ok, "\(found) is installed"))
        } else {
            out.append(
                Finding(
                    "kubectl",
                    .fail,
                    "kubectl is not installed in \(dirs.joined(separator: ", ")): the generated kubeconfigs have no client",
                    fix:
                        "add the Kubernetes apt repository pkgs.k8s.io (docs/auth.md), then add kubectl to setup_host.packages and run workstation setup-host --install-packages"
                )
            )
        }
        if k.auth == .serviceAccountToken { return out }
        if let found = dirs.map({ "\($0)/kubectl-oidc_login" }).first(where: { access(root.path($0), X_OK) == 0 }) {
            return out + [Finding("kubelogin", .ok, "\(found) is installed: kubeconfigs can log in")]
        }
        return out + [
            Finding(
                "kubelogin",
                .fail,
                "kubectl-oidc_login (kubelogin) is not installed in \(dirs.joined(separator: ", ")): every generated kubeconfig fails to log in",
                fix:
                    "install kubelogin from its release as /usr/local/bin/kubectl-oidc_login (it is not packaged for Debian 12; docs/auth.md), or set kubernetes.auth: service-account-token"
            )
        ]
    }

    /// Whether the kernel enforces each budget: the cgroup v2 memory and pids controllers on the person's slice,
    /// and the limits the slice has now (`memory.high`, `memory.max`, `memory.swap.max`, `pids.max`,
    /// `cgroups(7)`, kernel `Documentation/admin-guide/cgroup-v2.rst`) equal to the drop-in's. Where the host runs
    /// cgroup v1 or a hybrid tree, says plainly which limits are not enforced. A slice that does not exist yet
    /// (nobody of that person runs) is fine: systemd applies the drop-in when it starts.
    /// Without a cgroup tree under the root and no systemd running there (a sandbox root), nothing is said.
    func enforcementChecks(
        _ desired: DesiredState,
        _ snap: HostSnapshot,
        planner: Planner,
        systemdRuns: Bool
    ) -> [Finding] {
        let budgeted = desired.users.compactMap { u -> (DesiredUser, MemoryBudget, Int?, Int)? in
            guard let b = planner.budget(for: u.entry), let acct = snap.account(u.osUser) else { return nil }
            return (u, b, planner.tasksMax(for: u.entry), acct.uid)
        }
        guard !budgeted.isEmpty else { return [] }
        let unified = root.path("/sys/fs/cgroup/cgroup.controllers")
        guard let controllers = readPseudoFile(unified).map({ String(decoding: $0, as: UTF8.self) }) else {
            if exists("/sys/fs/cgroup/memory") || exists("/sys/fs/cgroup/unified") {
                let pids = exists("/sys/fs/cgroup/pids")
                return [
                    Finding(
                        "enforcement",
                        .warn,
                        "this host runs cgroup v1 (hybrid): MemoryHigh and MemorySwapMax are not enforced, MemoryMax only as the v1 memory limit"
                            + (pids ? "" : ", and TasksMax not at all (no pids controller)"),
                        fix:
                            "boot with systemd.unified_cgroup_hierarchy=1 (Debian 11 and later default to it) so the budgets hold as written"
                    )
                ]
            }
            return systemdRuns
                ? [
                    Finding(
                        "enforcement",
                        .warn,
                        "no cgroup tree under \(root.path("/sys/fs/cgroup")): cannot tell whether the budgets are enforced"
                    )
                ] : []
        }
        let available = Set(controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        var out: [Finding] = []
        for needed in ["memory", "pids"] where !available.contains(needed) {
            out.append(
                Finding(
                    "enforcement",
                    .fail,
                    "the cgroup v2 \(needed) controller is not available: \(needed == "memory" ? "memory budgets" : "task limits") are not enforced",
                    fix: "enable it on the kernel command line (cgroup_enable=\(needed)) and reboot"
                )
            )
        }
        guard out.isEmpty else { return out }
        let sliceParent = "/sys/fs/cgroup/user.slice"
        if let subtree = readPseudoFile(root.path("\(sliceParent)/cgroup.subtree_control")).map({
            String(decoding: $0, as: UTF8.self)
        }) {
            let enabled = Set(subtree.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            for needed in ["memory", "pids"]
            where !enabled.contains(needed) && budgeted.contains(where: { exists("\(sliceParent)/user-\($0.3).slice") })
            {
                out.append(
                    Finding(
                        "enforcement",
                        .fail,
                        "user.slice does not delegate the \(needed) controller to the person slices: their limits are not enforced",
                        fix:
                            "systemctl daemon-reload (systemd enables the controller when a slice sets a limit); check that nothing writes cgroup.subtree_control"
                    )
                )
            }
        }
        for (u, b, tasks, uid) in budgeted {
            let dir = "\(sliceParent)/user-\(uid).slice"
            guard exists(dir) else {
                out.append(
                    Finding(
                        "enforcement",
                        user: u.osUser,
                        .ok,
                        "user-\(uid).slice is not running; systemd applies the budget when it starts"
                    )
                )
                continue
            }
            func value(_ file: String) -> String? {
                readPseudoFile(root.path("\(dir)/\(file)")).map {
                    String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            var expected: [(String, String)] = [
                ("memory.high", String(b.high)), ("memory.max", String(b.max)), ("memory.swap.max", String(b.swapMax)),
            ]
            if let tasks { expected.append(("pids.max", String(tasks))) }
            let wrong = expected.compactMap { file, want -> String? in
                let have = value(file)
                return have == want ? nil : "\(file) is \(have.map { printable($0) } ?? "missing"), not \(want)"
            }
            if wrong.isEmpty {
                out.append(
                    Finding(
                        "enforcement",
                        user: u.osUser,
                        .ok,
                        "user-\(uid).slice enforces the budget" + (tasks == nil ? "" : " and the task limit")
                    )
                )
            } else {
                out.append(
                    Finding(
                        "enforcement",
                        user: u.osUser,
                        .fail,
                        "user-\(uid).slice does not enforce the budget: \(wrong.joined(separator: ", "))",
                        fix:
                            "systemctl daemon-reload (workstation apply runs it after writing the drop-in); systemctl show user-\(uid).slice -p MemoryMax,TasksMax"
                    )
                )
            }
        }
        return out
    }

    /// The integrations' token files (`authentik.token_file`, `vault.token_file`): a regular file owned by root,
    /// neither group- nor other-readable, as ssh requires of a private key. Absent files are the integration's own
    /// error, reported when it runs.
    func tokenFileChecks() -> [Finding] {
        let files = [
            ("authentik.token_file", inputs.settings.authentik?.token.file),
            ("vault.token_file", inputs.settings.vault?.token.file),
        ]
        var out: [Finding] = []
        for case let (key, path?) in files {
            var st = stat()
            guard lstat(root.path(path), &st) == 0 else {
                out.append(
                    Finding(
                        "token-file",
                        .warn,
                        "\(key) \(path) does not exist",
                        fix: "write the token there (root, mode 0600)"
                    )
                )
                continue
            }
            if st.st_mode & S_IFMT != S_IFREG {
                out.append(
                    Finding(
                        "token-file",
                        .fail,
                        "\(key) \(path) is not a regular file",
                        fix: "replace it with a regular file (root, mode 0600)"
                    )
                )
            } else if st.st_uid != 0 || st.st_mode & 0o077 != 0 {
                out.append(
                    Finding(
                        "token-file",
                        .fail,
                        "\(key) \(path) is owned by uid \(st.st_uid) with mode \(octal(UInt32(st.st_mode) & 0o7777)): another account could read or replace the token",
                        fix: "chown root:root \(path) && chmod 0600 \(path)"
                    )
                )
            } else {
                out.append(
                    Finding(
                        "token-file",
                        .ok,
                        "\(key) \(path) is root's alone (mode \(octal(UInt32(st.st_mode) & 0o7777)))"
                    )
                )
            }
        }
        return out
    }
}
