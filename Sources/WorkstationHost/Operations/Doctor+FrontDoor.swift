import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

// The front door checks of `doctor` (docs/dispatch.md): sockets, units, firewall, routed ports.
extension Doctor {
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

    func lstatKind(_ hostPath: String) -> mode_t? {
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
            for name in map.users.keys.sorted() {
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
}
