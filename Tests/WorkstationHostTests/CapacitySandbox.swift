import Foundation
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// A temp root seeded like a fresh Debian host and converged with the real shadow utilities and `systemctl --root`,
/// plus helpers to write a synthetic `/proc`, `/proc/pressure` and cgroup tree under it.
final class CapacitySandbox {
    static let roster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """
    static let gib: UInt64 = 1 << 30

    let temp: TempRoot
    var dir: String { temp.path }
    let root: HostRoot

    init(
        roster: String = CapacitySandbox.roster,
        settings: String = "",
        memTotal: UInt64? = 32 << 30,
        swap: UInt64 = 8 << 30
    ) throws {
        temp = try TempRoot("cap")
        root = HostRoot(temp.path)
        try write("/etc/workstation/roster.yaml", roster)
        try write(
            "/etc/workstation/workstation.yaml",
            settings.isEmpty ? "config_base: /srv/workstation/config-base\n" : settings
        )
        try SandboxRoot.seed(root, settings: try inputs().settings)
        if let memTotal { try meminfo(total: memTotal, swap: swap) }
    }

    func inputs() throws -> Inputs { try Engine.load(InputPaths(roster: nil, settings: nil), root: root) }

    @discardableResult
    func apply(allowOvercommit: Bool = false) throws -> ApplyOutcome {
        try Engine.apply(try inputs(), root: root, runner: ProcessRunner(), allowOvercommit: allowOvercommit)
    }

    func path(_ hostPath: String) -> String { root.path(hostPath) }

    func write(_ hostPath: String, _ content: String, mode: Int = 0o644, uid: Int? = nil) throws {
        try temp.write(hostPath, content, mode: mode, owner: uid.map { ($0, $0) })
    }

    func remove(_ hostPath: String) throws { try FileManager.default.removeItem(atPath: path(hostPath)) }

    func uid(_ user: String) -> Int {
        AccountDatabase.passwd(root.read("/etc/passwd") ?? Data()).first { $0.name == user }!.uid
    }

    func meminfo(total: UInt64, swap: UInt64, available: UInt64? = nil) throws {
        try write(
            "/proc/meminfo",
            """
            MemTotal:       \(total / 1024) kB
            MemFree:        \(total / 2048) kB
            MemAvailable:   \((available ?? total / 2) / 1024) kB
            SwapTotal:      \(swap / 1024) kB
            SwapFree:       \(swap / 1024) kB

            """
        )
    }

    /// A synthetic process: `/proc/<pid>/status` and `/proc/<pid>/stat`.
    func process(_ pid: Int, uid: Int, name: String, rssKiB: UInt64?, session: Int, tty: Int) throws {
        var status =
            "Name:\t\(name)\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t\(pid)\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\nGid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n"
        if let rssKiB { status += "VmRSS:\t  \(rssKiB) kB\n" }
        try write("/proc/\(pid)/status", status)
        try write("/proc/\(pid)/stat", "\(pid) (\(name)) S 1 \(pid) \(session) \(tty) \(pid) 4194560 0 0 0 0\n")
    }

    /// Makes the root look like a host where systemd runs with cgroup v2, with the given unit cgroups populated,
    /// each person's slice enforcing the limits of their drop-in as systemd would set them, and the units setup-host
    /// starts (the reconcile timer) active.
    func systemdRunning(populated: [(instance: String, uid: Int)]) throws {
        try FileManager.default.createDirectory(atPath: path("/run/systemd/system"), withIntermediateDirectories: true)
        try write("/sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n")
        try write("/sys/fs/cgroup/user.slice/cgroup.subtree_control", "memory pids\n")
        try write("/run/systemd/units/invocation:\(ReconcileUnits.timerName)", "0\n")
        let inputs = try inputs()
        let planner = Planner(settings: inputs.settings)
        for p in populated {
            try write(
                "/sys/fs/cgroup/user.slice/user-\(p.uid).slice/\(p.instance)/cgroup.events",
                "populated 1\nfrozen 0\n"
            )
            let accounts = AccountDatabase.passwd(root.read("/etc/passwd") ?? Data())
            guard let name = accounts.first(where: { $0.uid == p.uid })?.name,
                let entry = inputs.roster.entries.first(where: { $0.osUser == name }),
                let b = planner.budget(for: entry)
            else { continue }
            try enforce(
                uid: p.uid,
                [
                    "memory.high": String(b.high), "memory.max": String(b.max), "memory.swap.max": String(b.swapMax),
                    "pids.max": planner.tasksMax(for: entry).map(String.init) ?? "max",
                ]
            )
        }
    }

    /// Writes the limit files of `user-<uid>.slice` (what the kernel enforces now).
    func enforce(uid: Int, _ files: [String: String]) throws {
        for (file, value) in files { try write("/sys/fs/cgroup/user.slice/user-\(uid).slice/\(file)", value + "\n") }
    }

    /// Completes a converged root so every doctor check passes: the tool manifest's packages installed, setup-host
    /// applied (managed layers, reconcile timer), a clone and a private kubeconfig per person.
    func makeHealthy() throws {
        let inputs = try inputs()
        try write(
            "/var/lib/dpkg/status",
            inputs.settings.setupHost.packages.map {
                "Package: \($0)\nStatus: install ok installed\nArchitecture: amd64\n"
            }
            .joined(separator: "\n")
        )
        let setup = try SetupHostEngine.apply(inputs, root: root, runner: ProcessRunner(), options: SetupHostOptions())
        precondition(setup.succeeded, "setup-host in the sandbox: \(setup.report.failed.map(\.error))")
        for user in ["alice", "bob-dev"] {
            let u = uid(user)
            for d in ["/home/\(user)/code", "/home/\(user)/code/.git", "/home/\(user)/.kube"] {
                try FileManager.default.createDirectory(atPath: path(d), withIntermediateDirectories: true)
                chown(path(d), uid_t(u), gid_t(u))
            }
            try write("/home/\(user)/.kube/config", "apiVersion: v1\nkind: Config\n", mode: 0o600, uid: u)
        }
    }
}
