import Foundation
import Synchronization
import Testing
import WorkstationCore

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// Answers every command with a fixed status and records it (doctor's `nft list table`).
final class StubRunner: CommandRunner {
    let status: Int32
    private let log = Mutex<[[String]]>([])
    init(status: Int32) { self.status = status }
    var commands: [[String]] { log.withLock { $0 } }
    var spawned: Int { 0 }
    func run(_ argv: [String], environment: [String: String], stdin: Data?) throws -> CommandResult {
        log.withLock { $0.append(argv) }
        return CommandResult(status: status, stdout: "", stderr: status == 0 ? "" : "Error: No such file or directory")
    }
}

/// One way the front door can be wrong, and the doctor finding for it.
enum FrontDoorBreakage: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case dirWritable, dirOwnedByAnother, socketOpenToOthers, socketOwnedByAnother, socketMissing, dispatchSocketInactive
    case firewallInactive, tableNotLoaded, portHeldByAnother, portOnWildcard, portOnWildcardV6, strayInstancePortOnLAN
    case ttydSocketOpenToOthers, portNotListening

    var testDescription: String { rawValue }

    /// (check, user, severity) doctor must report.
    var expected: (String, String?, Finding.Severity) {
        switch self {
        case .dirWritable, .dirOwnedByAnother, .socketOpenToOthers, .socketOwnedByAnother, .socketMissing,
            .ttydSocketOpenToOthers:
            ("front-socket", nil, .fail)
        case .dispatchSocketInactive, .firewallInactive: ("front-unit", nil, .fail)
        case .tableNotLoaded: ("firewall", nil, .fail)
        case .portHeldByAnother, .portOnWildcard, .portOnWildcardV6: ("routed-port", "alice", .fail)
        case .strayInstancePortOnLAN: ("instance-port", nil, .fail)
        case .portNotListening: ("routed-port", "alice", .warn)
        }
    }
}

@Suite(.serialized) struct FrontDoorDoctorTests {
    /// A converged sandbox where systemd runs and the front door is as shipped: sockets, active units, every
    /// routed port held by its person on loopback.
    func healthy() throws -> (CapacitySandbox, alicePort: Int) {
        let s = try CapacitySandbox()
        let outcome = try s.apply()
        #expect(outcome.succeeded)
        try s.makeHealthy()
        try s.systemdRunning(populated: [
            ("t3-serve@alice.service", s.uid("alice")), ("t3-serve@bob-dev.service", s.uid("bob-dev")),
        ])
        try s.frontDoor()
        let map = try DispatchMap.decode(try #require(s.root.read("/etc/t3-serve/dispatch.json")))
        let alice = try #require(map.users.values.first { $0.osUser == "alice" }?.port)
        // Every routed person (the admin too) on loopback: alice over IPv4, the others over IPv6.
        let others = map.users.values.filter { $0.osUser != "alice" }.compactMap { u in
            AccountDatabase.passwd(s.root.read("/etc/passwd") ?? Data()).first { $0.name == u.osUser }.map {
                (ProcNet.loopback6, u.port, $0.uid)
            }
        }
        try s.listeners(v4: [(ProcNet.loopback4, alice, s.uid("alice"))], v6: others)
        return (s, alice)
    }

    @Test func aShippedFrontDoorPasses() throws {
        let (s, _) = try healthy()
        let nft = StubRunner(status: 0)
        let report = try Doctor(root: s.root, inputs: try s.inputs(), runner: nft).run()
        #expect(report.healthy, "\(report.findings.filter { $0.severity != .ok })")
        #expect(report.warnings == 0, "\(report.findings.filter { $0.severity == .warn })")
        let checks = report.findings.map { "\($0.check) \($0.user ?? "-")" }
        for c in ["front-socket -", "front-unit -", "firewall -", "routed-port alice", "routed-port bob-dev"] {
            #expect(checks.contains(c), "no \(c)")
        }
        #expect(nft.commands == [["/usr/sbin/nft", "list", "table", "inet", "workstation"]])
        // Without a runner (metrics, --root) nothing is spawned and the table check is left out.
        #expect(try Doctor(root: s.root, inputs: try s.inputs()).run().findings.allSatisfy { $0.check != "firewall" })
    }

    @Test(arguments: FrontDoorBreakage.allCases)
    func findsEachFrontDoorFaultAndNamesAFix(_ b: FrontDoorBreakage) throws {
        let (s, alicePort) = try healthy()
        let alice = s.uid("alice")
        let bob = s.uid("bob-dev")
        var nftStatus: Int32 = 0
        let sock = "/run/workstation-dispatch/dispatch.sock"
        switch b {
        case .dirWritable: chmod(s.path("/run/workstation-dispatch"), 0o777)
        case .dirOwnedByAnother: chown(s.path("/run/workstation-dispatch"), uid_t(bob), gid_t(bob))
        case .socketOpenToOthers: chmod(s.path(sock), 0o666)
        case .socketOwnedByAnother: chown(s.path(sock), uid_t(bob), 0)
        case .socketMissing: try s.remove(sock)
        case .dispatchSocketInactive: try s.unixSockets([])  // the socket file is there, nobody listens on it
        case .firewallInactive: try s.remove("/run/systemd/units/invocation:workstation-firewall.service")
        case .tableNotLoaded: nftStatus = 1
        case .portHeldByAnother: try s.listeners(v4: [(ProcNet.loopback4, alicePort, bob)], v6: [])
        case .portOnWildcard: try s.listeners(v4: [(ProcNet.any4, alicePort, alice)], v6: [])
        case .portOnWildcardV6:
            try s.listeners(v4: [(ProcNet.loopback4, alicePort, alice)], v6: [(ProcNet.any6, alicePort, alice)])
        case .strayInstancePortOnLAN:
            try s.listeners(v4: [(ProcNet.loopback4, alicePort, alice), (ProcNet.lan4, 3870, bob)], v6: [])
        case .ttydSocketOpenToOthers: try s.frontSocket(dir: "/run/workstation-ttyd", socket: "ttyd.sock", mode: 0o666)
        case .portNotListening: try s.listeners(v4: [], v6: [])
        }
        let report = try Doctor(root: s.root, inputs: try s.inputs(), runner: StubRunner(status: nftStatus)).run()
        let (check, user, severity) = b.expected
        let hit = report.findings.first { $0.check == check && $0.user == user && $0.severity == severity }
        #expect(hit != nil, "\(b): no \(severity) \(check) in \(report.findings.filter { $0.severity != .ok })")
        #expect(hit?.fix?.isEmpty == false)
        #expect(report.healthy == (severity != .fail))
        if b == .portHeldByAnother {
            #expect(hit?.message.contains("held by bob-dev (uid \(bob))") == true, "\(hit?.message ?? "")")
        }
        if b == .portOnWildcardV6 { #expect(hit?.message.contains("listens on ::") == true, "\(hit?.message ?? "")") }
    }
}

extension CapacitySandbox {
    /// A socket node (`mknod(2)` S_IFSOCK) in a directory, both with the given owners and modes.
    func frontSocket(dir: String, socket: String, dirMode: mode_t = 0o755, mode: mode_t = 0o660, gid: Int = 33) throws {
        try FileManager.default.createDirectory(atPath: path(dir), withIntermediateDirectories: true)
        chmod(path(dir), dirMode)
        chown(path(dir), 0, 0)
        let sock = path(joinPath(dir, socket))
        unlink(sock)
        #expect(mknod(sock, S_IFSOCK | mode, 0) == 0)
        chmod(sock, mode)
        chown(sock, 0, gid_t(gid))
    }

    /// The dispatcher's socket as its socket unit makes it, and the firewall and socket units active: the service
    /// with the invocation record systemd writes for services, the socket unit (which gets none) by its socket
    /// listening in `/proc/net/unix`.
    func frontDoor() throws {
        try frontSocket(dir: "/run/workstation-dispatch", socket: "dispatch.sock")
        try FileManager.default.createDirectory(atPath: path("/run/systemd/units"), withIntermediateDirectories: true)
        symlink("0123456789abcdef0123456789abcdef", path("/run/systemd/units/invocation:workstation-firewall.service"))
        try unixSockets(["/run/workstation-dispatch/dispatch.sock"])
    }

    /// `/proc/net/unix` with these paths listening (`__SO_ACCEPTCON`, flags 00010000).
    func unixSockets(_ listening: [String]) throws {
        try write(
            "/proc/net/unix",
            "Num       RefCount Protocol Flags    Type St Inode Path\n"
                + listening.enumerated().map {
                    "000000000000\($0.offset + 1000): 00000002 00000000 00010000 0001 01 \(4000 + $0.offset) \($0.element)\n"
                }.joined()
        )
    }

    /// `/proc/net/tcp` and `tcp6` with these listeners (address, port, owner).
    func listeners(v4: [([UInt8], Int, Int)], v6: [([UInt8], Int, Int)]) throws {
        try write("/proc/net/tcp", ProcNet.table(v4.map { ($0.0, $0.1, $0.2, "0A") }))
        try write("/proc/net/tcp6", ProcNet.table(v6.map { ($0.0, $0.1, $0.2, "0A") }))
    }
}
