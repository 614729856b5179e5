import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WorkstationCore
import WorkstationTestSupport
import _CryptoExtras

@testable import WorkstationDispatch

#if canImport(Glibc)
import Glibc
#endif

/// Runs `curl` as another account (`setpriv`, util-linux) against the dispatcher's unix socket.
private func curlAs(_ account: String, socket: String, headers: [(String, String)]) throws -> String {
    var args = [
        "--reuid=\(account)", "--regid=\(account == "nobody" ? "nogroup" : account)", "--clear-groups",
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--unix-socket", socket,
    ]
    for (n, v) in headers { args += ["-H", "\(n): \(v)"] }
    args.append("http://t3.example.org/")
    return try TestProcess.run("/usr/bin/setpriv", args).stdout
}

/// The proven-identity paths, attacked from this process and from other accounts.
@Suite(.serialized) struct FrontDoorTests {
    @Test func anotherAccountOnTheSocketIsRefusedWhateverItsHeadersSay() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        try map.write(["alice": alice.port])
        let server = try await startDispatcher(map: map)
        chmod(map.dir, 0o755)
        chmod(server.socketPath, 0o666)  // reachable by anyone: the peer check alone must refuse
        let status = try curlAs("nobody", socket: server.socketPath, headers: identity("alice"))
        let asRoot = try curlAs("root", socket: server.socketPath, headers: identity("alice"))
        await server.shutdown()
        alice.stop()
        map.remove()
        #expect(status == "403", "nobody is not the front proxy")
        #expect(asRoot == "200", "the front proxy's account (root here) is believed")
        #expect(alice.requestCount == 1, "only the front proxy's request reached the upstream")
    }

    @Test func aListenerOwnedByAnotherAccountGetsNoByte() async throws {
        // The person's instance is down and someone else (here: root, while the map says nobody) holds the port.
        let squatter = try TestHTTPServer.byteSink()
        let map = try MapDir()
        try map.writeRaw(
            DispatchMap(users: [
                "alice": .init(osUser: "nobody", port: squatter.port, ports: ["t3-serve@": squatter.port])
            ])
            .encoded()
        )
        let server = try await startDispatcher(map: map)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let r = try await send(client, server, headers: identity("alice") + [("Cookie", "session=secret")])
        try await client.shutdown()
        try await Task.sleep(for: .milliseconds(100))
        await server.shutdown()
        squatter.stop()
        map.remove()
        #expect(r.status == 502)
        #expect(squatter.bytesReceived == 0, "the squatter must not receive the request or its cookie")
    }

    @Test func acceptorOwnerIsReadFromTheSocketTables() throws {
        let procNet = try TempRoot("procnet")
        let dir = procNet.path
        let header =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        // 18774 = 0x4956, 40306 = 0x9D72: the listener, the accepted socket (uid 1001) and the client side (uid 0).
        try
            (header
            + "   0: 0100007F:4956 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1 1 0 100 0 0 10 0\n"
            + "   1: 0100007F:9D72 0100007F:4956 01 00000000:00000000 00:00000000 00000000     0        0 2 2 0 20 0 0 10 -1\n"
            + "   2: 0100007F:4956 0100007F:9D72 01 00000000:00000000 00:00000000 00000000  1001        0 3 1 0 20 0 0 10 -1\n")
            .write(toFile: dir + "/tcp", atomically: true, encoding: .utf8)
        try
            (header
            + "   0: 0000000000000000FFFF00000100007F:4957 0000000000000000FFFF00000100007F:9D73 01 00000000:00000000 00:00000000 00000000  1002        0 4 1 0 20 0 0 10 -1\n")
            .write(toFile: dir + "/tcp6", atomically: true, encoding: .utf8)
        #expect(SocketOwners.acceptorUIDFromTables(serverPort: 18774, clientPort: 40306, procNet: dir) == 1001)
        #expect(
            SocketOwners.acceptorUIDFromTables(serverPort: 18775, clientPort: 40307, procNet: dir) == 1002,
            "a dual-stack listener"
        )
        #expect(SocketOwners.acceptorUIDFromTables(serverPort: 18774, clientPort: 40307, procNet: dir) == nil)
    }

    @Test func theKernelNamesTheAcceptorOfARealConnection() throws {
        // A listener of nobody's, IPv4 and dual-stack IPv6, and this process (root) connecting to each.
        for (bind, family) in [("127.0.0.1", "AF_INET"), ("::", "AF_INET6")] {
            let script =
                "import socket,sys,time\ns=socket.socket(socket.\(family));s.bind(('\(bind)',0));s.listen(8)\n"
                + "print(s.getsockname()[1],flush=True)\nc=s.accept()\ntime.sleep(30)"
            let p = try TestProcess(
                "/usr/bin/setpriv",
                ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", script]
            )
            defer {
                p.signal(SIGKILL)
                _ = p.wait()
            }
            let line = try #require(p.firstLine(), "the listener printed no port")
            let port = try #require(Int(line.trimmingCharacters(in: .whitespacesAndNewlines)))
            let fd = try connectLoopback(port: port)
            defer { close(fd) }
            var local = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            let clientPort = Int(UInt16(bigEndian: local.sin_port))
            var answer = SockDiag.lookup(serverPort: port, clientPort: clientPort)
            for _ in 0..<100 where answer == .notYet {
                usleep(1000)
                answer = SockDiag.lookup(serverPort: port, clientPort: clientPort)
            }
            #expect(answer == .found(65534), "\(bind): \(answer)")
            #expect(SocketOwners.acceptorUID(serverPort: port, clientPort: clientPort) == 65534)
            #expect(
                SockDiag.lookup(serverPort: port, clientPort: clientPort == 65535 ? 1 : clientPort + 1) == .notYet,
                "another connection is not this one"
            )
        }
    }
}
