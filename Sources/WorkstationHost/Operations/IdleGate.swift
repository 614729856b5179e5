import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// One process of a user, read from `/proc/<pid>/`.
public struct UserProcess: Sendable, Hashable, Codable {
    public var pid: Int
    /// `/proc/<pid>/comm`: the command name, at most 15 bytes.
    public var name: String
    /// True when the name is one of `idle.process_names` and the process is not part of the person's own managed
    /// instance (see `managedUnit`).
    public var interactive: Bool
    /// The per-user unit instance whose cgroup holds the process (e.g. `t3-serve@alice.service`), from
    /// `/proc/<pid>/cgroup`; nil for anything else (a login, tmux, a cron job...). The instance workstation runs
    /// for the person is always there, so it never makes them busy; people reach it through the t3 port, which
    /// the connection check counts.
    public var managedUnit: String? = nil
}

/// One established TCP connection to a user's t3 port, from `/proc/net/tcp` or `tcp6`.
public struct UserConnection: Sendable, Hashable, Codable {
    /// `local -> remote`, addresses as in the kernel table (hex), ports decimal.
    public var local: String
    public var remote: String
}

/// What the idle gate saw for one user.
public struct IdleReport: Sendable, Hashable, Codable {
    public var user: String
    public var uid: Int
    /// Every process whose real uid is the user's.
    public var processes: [UserProcess]
    /// ESTABLISHED connections whose local port is the user's t3 port.
    public var connections: [UserConnection]
    public var t3Port: Int?
    /// What could not be read (`/proc`, a process's `status`, the TCP tables), each with the reason. Non-empty:
    /// the gate cannot tell whether the person is busy, so it fails closed (not idle).
    public var unreadable: [String] = []

    /// Idle: everything could be read, no interactive process and no established connection to the t3 port.
    public var isIdle: Bool { unreadable.isEmpty && !processes.contains(where: \.interactive) && connections.isEmpty }

    /// One line per reason the user is busy (or could not be judged).
    public var busyLines: [String] {
        processes.filter(\.interactive).map { "process \($0.pid) (\(printable($0.name)))" }
            + connections.map { "connection to the t3 port \(t3Port ?? 0): \($0.remote) -> \($0.local)" }
            + unreadable.map { "cannot read \($0); the idle gate fails closed" }
    }

    /// The processes that are not the person's managed instance (those must end before an archive).
    public var foreignProcesses: [UserProcess] { processes.filter { $0.managedUnit == nil } }
}

/// The idle gate: reads `<root>/proc` (the real `/proc` when the root is `/`); never spawns a process.
///
/// Sources: `proc(5)` — `/proc/<pid>/status` line `Uid:` (real, effective, saved, fs), `/proc/<pid>/comm`,
/// `/proc/net/tcp` and `/proc/net/tcp6` (`sl local_address rem_address st ...`, addresses `HEX:PORTHEX`,
/// state `01` = `TCP_ESTABLISHED` in the kernel's `tcp_states.h`).
public struct IdleGate: Sendable {
    public let root: HostRoot
    public let settings: Settings

    public init(root: HostRoot, settings: Settings) {
        self.root = root
        self.settings = settings
    }

    /// Every process of `uid` (real uid), sorted by pid; a process of one of `managedUnits` (its cgroup, the last
    /// path component of the `0::` line of `/proc/<pid>/cgroup`, cgroup v2) is marked and never interactive.
    /// - Parameter unreadable: receives what could not be read: `/proc` itself (unless it is absent under a
    ///   `--root` prefix, which has no processes of its own), or a process's `status` that exists but cannot be
    ///   opened (e.g. `hidepid`); a process that exits while being read is skipped.
    public func processes(uid: Int, managedUnits: Set<String> = [], unreadable: inout [String]) -> [UserProcess] {
        let procDir = root.path("/proc")
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: procDir)
        } catch {
            var st = stat()
            if root.isSystem || lstat(procDir, &st) == 0 { unreadable.append("\(procDir) (\(Self.reason(error)))") }
            return []
        }
        var out: [UserProcess] = []
        for e in entries {
            guard let pid = Int(e) else { continue }
            guard let status = readPseudoFile(root.path("/proc/\(e)/status")) else {
                let why = errno
                if why != ENOENT && why != ESRCH {
                    unreadable.append("\(root.path("/proc/\(e)/status")) (\(String(cString: strerror(why))))")
                }
                continue
            }
            let text = String(decoding: status, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { continue }
            let ids = line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }
            guard ids.first == uid else { continue }
            var name = String(decoding: root.read("/proc/\(e)/comm") ?? Data(), as: UTF8.self)
            while name.hasSuffix("\n") { name.removeLast() }
            if name.isEmpty, let n = text.split(separator: "\n").first(where: { $0.hasPrefix("Name:") }) {
                name = n.dropFirst(5).trimmingCharacters(in: .whitespaces)
            }
            let unit = Self.unit(cgroup: readPseudoFile(root.path("/proc/\(e)/cgroup"))).flatMap {
                managedUnits.contains($0) ? $0 : nil
            }
            out.append(
                UserProcess(
                    pid: pid,
                    name: name,
                    interactive: unit == nil && settings.idle.processNames.contains(name),
                    managedUnit: unit
                )
            )
        }
        return out.sorted { $0.pid < $1.pid }
    }

    /// `processes(uid:managedUnits:unreadable:)`, ignoring what could not be read.
    public func processes(uid: Int) -> [UserProcess] {
        var ignored: [String] = []
        return processes(uid: uid, unreadable: &ignored)
    }

    /// The unit of a `/proc/<pid>/cgroup` text (`cgroups(7)`): the last component of the cgroup v2 (`0::`) path
    /// when it names a service, e.g. `0::/user.slice/user-1001.slice/t3-serve@alice.service` ->
    /// `t3-serve@alice.service`; nil otherwise.
    static func unit(cgroup: Data?) -> String? {
        guard let cgroup else { return nil }
        for line in String(decoding: cgroup, as: UTF8.self).split(separator: "\n") where line.hasPrefix("0::") {
            guard let last = line.dropFirst(3).split(separator: "/").last, last.hasSuffix(".service") else {
                return nil
            }
            return String(last)
        }
        return nil
    }

    private static func reason(_ error: any Error) -> String {
        ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError ?? error as NSError).localizedDescription
    }

    /// ESTABLISHED connections whose local port is `port`, from `tcp` and `tcp6`.
    /// - Parameter unreadable: receives a table that cannot be read while `/proc` exists (under a `--root` prefix
    ///   without `/proc`, there is nothing to read); `tcp6` may be absent (a kernel without IPv6).
    public func connections(port: Int, unreadable: inout [String]) -> [UserConnection] {
        var out: [UserConnection] = []
        var st = stat()
        let haveProc = root.isSystem || lstat(root.path("/proc"), &st) == 0
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let data = readPseudoFile(root.path(table), limit: 64 << 20) else {
                let why = errno
                if haveProc && (root.isSystem || why != ENOENT) && !(table.hasSuffix("6") && why == ENOENT) {
                    unreadable.append("\(root.path(table)) (\(String(cString: strerror(why))))")
                }
                continue
            }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 4, f[3] == "01" else { continue }
                guard let (laddr, lport) = Self.endpoint(f[1]), let (raddr, rport) = Self.endpoint(f[2]), lport == port
                else { continue }
                out.append(UserConnection(local: "\(laddr):\(lport)", remote: "\(raddr):\(rport)"))
            }
        }
        return out
    }

    /// `connections(port:unreadable:)`, ignoring what could not be read.
    public func connections(port: Int) -> [UserConnection] {
        var ignored: [String] = []
        return connections(port: port, unreadable: &ignored)
    }

    /// The user's processes (their managed unit instances' own marked, never busy) and connections to their t3
    /// port (from state, the port apply allocated); whatever cannot be read makes the report not idle.
    public func check(user: String, uid: Int, state: WorkstationState) -> IdleReport {
        let port = state.ports[settings.primaryUnit.template]?[user]
        var unreadable: [String] = []
        let procs = processes(
            uid: uid,
            managedUnits: Set(settings.units.map { $0.instance(user) }),
            unreadable: &unreadable
        )
        let conns = port.map { connections(port: $0, unreadable: &unreadable) } ?? []
        var report = IdleReport(user: user, uid: uid, processes: procs, connections: conns, t3Port: port)
        report.unreadable = unreadable
        return report
    }

    /// `0100007F:0EBE` -> (`0100007F`, 3774).
    static func endpoint(_ s: Substring) -> (String, Int)? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        return (String(parts[0]), port)
    }
}
