import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `workstation dispatch` as the unit runs it: settings that would let a local account act as another person, or a
/// settings file that is not there, stop it before it listens (exit 1, the place and the fix named, no socket made).
@Suite struct DispatchCommandEndToEndTests {
    @Test(arguments: [
        (
            "dispatch:\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n",
            "workstation.yaml:2:11: error: dispatch.listen must be unix:/PATH"
        ),
        (
            "dispatch:\n  identity: jwt\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n",
            "workstation.yaml:2:13: error: identity: jwt needs a dispatch.jwt section"
        ),
    ])
    func unsafeSettingsNeverListen(_ yaml: String, _ expected: String) throws {
        let dir = try TempRoot("dispatch")
        try dir.write("/workstation.yaml", yaml)
        let before = dir.snapshot()
        let r = try CLI.run(["dispatch", "--settings", dir.file("/workstation.yaml")])
        #expect(r.status == 1)
        #expect(r.stderr.contains(dir.path + "/" + expected), "\(r.stderr)")
        #expect(dir.snapshot() == before, "nothing was created or changed: \(before.differences(to: dir.snapshot()))")
    }

    @Test func aNamedSettingsFileThatIsNotThereIsAnError() throws {
        let r = try CLI.run(["dispatch", "--settings", "/nonexistent/workstation.yaml"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("the settings file /nonexistent/workstation.yaml does not exist; check --settings"))
    }

    /// Out of descriptors, the dispatcher pauses accepting (the listening socket stays readable, so waiting for it
    /// again at once would spin) and serves again once descriptors are free.
    @Test func runningOutOfDescriptorsPausesAcceptsInsteadOfSpinning() async throws {
        let dir = try TempRoot("dispatch")
        try dir.write("/dispatch.json", #"{"users":{},"version":1}"#)
        let socket = dir.path + "/d.sock"
        try dir.write(
            "/workstation.yaml",
            "dispatch:\n  listen: unix:\(socket)\n  metrics_listen: 127.0.0.1:0\n  front_proxy_users: [root]\n"
                + "  dispatch_file: \(dir.path)/dispatch.json\n"
        )
        let server = try TestProcess(
            "/usr/bin/prlimit",
            ["--nofile=64", Repository.workstationBinary, "dispatch", "--settings", dir.file("/workstation.yaml")],
            captureOutput: false
        )
        defer {
            server.signal(SIGKILL)
            _ = server.wait()
        }
        var probe: Int32 = -1
        for _ in 0..<200 where probe < 0 {
            probe = Self.connect(socket)
            if probe < 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        try #require(probe >= 0, "the dispatcher did not listen")
        close(probe)
        // More connections than descriptors: the kernel's backlog takes those the dispatcher cannot accept.
        var held = (0..<120).map { _ in Self.connect(socket) }
        // Closed once: a descriptor closed twice could be another test's by then.
        defer { for fd in held where fd >= 0 { close(fd) } }
        #expect(held.allSatisfy { $0 >= 0 })
        try await Task.sleep(for: .milliseconds(300))
        let before = try Self.cpuTicks(server.pid)
        try await Task.sleep(for: .seconds(1))
        let spent = try Self.cpuTicks(server.pid) - before
        #expect(spent < 30, "CPU ticks (1/100 s) in one second with accepts failing: \(spent)")
        for fd in held where fd >= 0 { close(fd) }
        held = []
        try await Task.sleep(for: .milliseconds(300))
        let fd = Self.connect(socket)
        try #require(fd >= 0)
        defer { close(fd) }
        let request = Array("GET / HTTP/1.1\r\nConnection: close\r\n\r\n".utf8)
        #expect(request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == request.count)
        var reply = [UInt8](repeating: 0, count: 64)
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let n = reply.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        #expect(String(decoding: reply.prefix(max(n, 0)), as: UTF8.self).hasPrefix("HTTP/1.1 403 "), "served again")
    }

    /// A blocking connection to the unix socket at `path`, or -1.
    static func connect(_ path: String) -> Int32 {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        if !ok { close(fd) }
        return ok ? fd : -1
    }

    /// User and system CPU time of `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15, proc(5)).
    static func cpuTicks(_ pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
}
