import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

// The per-person checks of `doctor`: account, home, inheritance, clone, secret files, unit and budget.
extension Doctor {
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
}
