import Foundation
import WorkstationCore

/// One process of a user, read from `/proc/<pid>/`.
public struct UserProcess: Sendable, Hashable, Codable {
    public var pid: Int
    /// `/proc/<pid>/comm`: the command name, at most 15 bytes.
    public var name: String
    /// True when the name is one of `idle.process_names`.
    public var interactive: Bool
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

    /// Idle: no interactive process and no established connection to the t3 port.
    public var isIdle: Bool { !processes.contains(where: \.interactive) && connections.isEmpty }

    /// One line per reason the user is busy.
    public var busyLines: [String] {
        processes.filter(\.interactive).map { "process \($0.pid) (\($0.name))" }
            + connections.map { "connection to the t3 port \(t3Port ?? 0): \($0.remote) -> \($0.local)" }
    }
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

    /// Every process of `uid` (real uid), sorted by pid.
    public func processes(uid: Int) -> [UserProcess] {
        let procDir = root.path("/proc")
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: procDir) else { return [] }
        var out: [UserProcess] = []
        for e in entries {
            guard let pid = Int(e), let status = root.read("/proc/\(e)/status") else { continue }
            let text = String(decoding: status, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { continue }
            let ids = line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }
            guard ids.first == uid else { continue }
            var name = String(decoding: root.read("/proc/\(e)/comm") ?? Data(), as: UTF8.self)
            while name.hasSuffix("\n") { name.removeLast() }
            if name.isEmpty, let n = text.split(separator: "\n").first(where: { $0.hasPrefix("Name:") }) {
                name = n.dropFirst(5).trimmingCharacters(in: .whitespaces)
            }
            out.append(UserProcess(pid: pid, name: name, interactive: settings.idle.processNames.contains(name)))
        }
        return out.sorted { $0.pid < $1.pid }
    }

    /// ESTABLISHED connections whose local port is `port`, from `tcp` and `tcp6`.
    public func connections(port: Int) -> [UserConnection] {
        var out: [UserConnection] = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let data = root.read(table) else { continue }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 4, f[3] == "01" else { continue }
                guard let (laddr, lport) = Self.endpoint(f[1]), let (raddr, rport) = Self.endpoint(f[2]), lport == port else { continue }
                out.append(UserConnection(local: "\(laddr):\(lport)", remote: "\(raddr):\(rport)"))
            }
        }
        return out
    }

    /// The user's processes and connections to their t3 port (from state, the port apply allocated).
    public func check(user: String, uid: Int, state: WorkstationState) -> IdleReport {
        let port = state.ports[settings.primaryUnit.template]?[user]
        return IdleReport(user: user, uid: uid, processes: processes(uid: uid), connections: port.map(connections(port:)) ?? [], t3Port: port)
    }

    /// `0100007F:0EBE` -> (`0100007F`, 3774).
    static func endpoint(_ s: Substring) -> (String, Int)? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        return (String(parts[0]), port)
    }
}
