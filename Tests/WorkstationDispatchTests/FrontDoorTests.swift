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

/// Settings that would let a local account act as another person are refused, located, and the dispatcher does not
/// start (no socket is created).
@Suite struct InsecureDeploymentTests {
    static let cases: [(name: String, yaml: String, message: String, line: Int)] = [
        (
            "loopback TCP listener with peer identity", "dispatch:\n  listen: 127.0.0.1:3773\n",
            "dispatch.listen must be unix:/PATH with identity: peer", 2
        ),
        (
            "any TCP listener with peer identity", "dispatch:\n  identity: peer\n  listen: \"[::]:3773\"\n",
            "dispatch.listen must be unix:/PATH with identity: peer", 3
        ),
        (
            "loopback in trusted_proxies", jwt(extra: "  trusted_proxies: [127.0.0.1]\n"),
            "'127.0.0.1' is this host's own address", 8
        ),
        (
            "IPv6 loopback in trusted_proxies", jwt(extra: "  trusted_proxies: [\"::1\"]\n"),
            "'::1' is this host's own address", 8
        ),
        (
            "this host's own address in trusted_proxies", jwt(extra: "  trusted_proxies: [10.0.0.9]\n"),
            "'10.0.0.9' is this host's own address", 8
        ),
        ("unix in trusted_proxies", jwt(extra: "  trusted_proxies: [unix]\n"), "'unix' is no longer an address", 8),
        (
            "trusted_proxies with peer identity", "dispatch:\n  trusted_proxies: [192.0.2.1]\n",
            "trusted_proxies applies to identity: jwt only", 2
        ),
        (
            "jwt identity without its section", "dispatch:\n  identity: jwt\n  listen: 0.0.0.0:3773\n",
            "identity: jwt needs a dispatch.jwt section", 2
        ),
        ("no front proxy account", "dispatch:\n  front_proxy_users: []\n", "front_proxy_users must name", 2),
        ("unknown identity mode", "dispatch:\n  identity: header\n", "dispatch.identity must be peer", 2),
    ]

    static func jwt(extra: String) -> String {
        "dispatch:\n  identity: jwt\n  listen: 0.0.0.0:3773\n  jwt:\n    jwks_file: /srv/jwks.json\n    issuer: https://auth.example.org/\n    audience: t3\n"
            + extra
    }

    @Test(arguments: cases.indices)
    func refusedWithItsLocation(_ index: Int) throws {
        let c = Self.cases[index]
        do {
            _ = try DispatchConfig.load(yaml: Data(c.yaml.utf8), file: "workstation.yaml", localAddresses: ["10.0.0.9"])
            Issue.record("\(c.name): expected a refusal")
        } catch let failure as ValidationFailure {
            #expect(failure.description.contains(c.message), "\(c.name): \(failure.description)")
            #expect(failure.diagnostics.first?.location.line == c.line, "\(c.name): \(failure.description)")
            #expect(failure.description.hasPrefix("workstation.yaml:"), "\(c.name)")
        }
    }

    @Test func aProgrammaticInsecureConfigDoesNotStart() async throws {
        let dir = try MapDir()
        defer { dir.remove() }
        var config = DispatchConfig()
        config.listen = .tcp(host: "127.0.0.1", port: 0)
        config.dispatchFile = dir.path
        await #expect(throws: DispatchError.self) { _ = try await DispatchServer.start(config: config) }
        config.listen = .unix(path: dir.dir + "/d.sock")
        config.frontProxyUsers = ["no-such-account-here"]
        await #expect(throws: DispatchError.self) { _ = try await DispatchServer.start(config: config) }
        #expect(!FileManager.default.fileExists(atPath: dir.dir + "/d.sock"), "nothing was created")
    }
}

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

/// `identity: jwt`: Authentik's signed token is the only proof; every forgery gets 403 and no upstream is contacted.
@Suite(.serialized) struct TokenIdentityTests {
    struct Claims: JWTPayload {
        var exp: ExpirationClaim
        var iss: IssuerClaim
        var aud: AudienceClaim
        var preferred_username: String
        var groups: [String]
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let issuer = "https://auth.example.org/application/o/t3/"

    /// A signing key and its JWKS (RFC 7517 section 4: kty, n, e, kid, alg).
    struct Signer {
        let keys = JWTKeyCollection()
        let jwks: String

        init(kid: String) async throws {
            let key = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
            await keys.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            let (n, e) = try key.publicKey.getKeyPrimitives()
            func b64url(_ d: Data) -> String {
                d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                    of: "/",
                    with: "_"
                )
                .replacingOccurrences(of: "=", with: "")
            }
            jwks =
                #"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"\#(kid)","n":"\#(b64url(n))","e":"\#(b64url(e))"}]}"#
        }

        func token(
            user: String = "alice",
            groups: [String] = ["Staff", "T3 Users"],
            issuer: String = issuer,
            audience: String = "t3",
            expires: Date = Date().addingTimeInterval(300)
        ) async throws -> String {
            try await keys.sign(
                Claims(
                    exp: .init(value: expires),
                    iss: .init(value: issuer),
                    aud: .init(value: [audience]),
                    preferred_username: user,
                    groups: groups
                ),
                kid: JWKIdentifier(string: "k1")
            )
        }
    }

    @Test func onlyAValidTokenIsBelievedAndItIsVerifiedOnce() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        try map.write(["alice": alice.port, "bob": alice.port])
        let signer = try await Signer(kid: "k1")
        let other = try await Signer(kid: "k1")  // the same key id, another key
        try signer.jwks.write(toFile: map.dir + "/jwks.json", atomically: true, encoding: .utf8)
        let server = try await startDispatcher(map: map) { c in
            c.identity = .jwt
            c.listen = .tcp(host: "127.0.0.1", port: 0)
            var j = JWTSettings()
            j.jwksFile = map.dir + "/jwks.json"
            j.issuer = Self.issuer
            j.audience = "t3"
            c.jwt = j
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        func status(_ headers: [(String, String)]) async throws -> Int {
            var req = HTTPClientRequest(url: "http://127.0.0.1:\(server.localAddress!.port!)/")
            for (n, v) in headers { req.headers.add(name: n, value: v) }
            let resp = try await client.execute(req, timeout: .seconds(30))
            _ = try await resp.body.collect(upTo: 1 << 20)
            return Int(resp.status.code)
        }
        let good = try await signer.token()
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  // {"alg":"none","typ":"JWT"}
        let goodPayload = good.split(separator: ".")[1]
        let forgeries: [(String, [(String, String)])] = [
            ("no token, identity headers only", identity("alice")),
            ("wrong key", [(Gate.jwtHeader, try await other.token())]),
            ("expired", [(Gate.jwtHeader, try await signer.token(expires: Date().addingTimeInterval(-60)))]),
            ("alg none", [(Gate.jwtHeader, "\(header).\(goodPayload).")]),
            ("other issuer", [(Gate.jwtHeader, try await signer.token(issuer: "https://evil.example.org/"))]),
            ("other audience", [(Gate.jwtHeader, try await signer.token(audience: "grafana"))]),
            ("not in the gate group", [(Gate.jwtHeader, try await signer.token(groups: ["Staff"]))]),
            ("username header disagrees", [(Gate.jwtHeader, good), (Gate.usernameHeader, "bob")]),
            ("groups header disagrees", [(Gate.jwtHeader, good), (Gate.groupsHeader, "T3 Users|Admins")]),
            ("token repeated", [(Gate.jwtHeader, good), (Gate.jwtHeader, good)]),
            (
                "tampered payload",
                [
                    (
                        Gate.jwtHeader,
                        good.replacingOccurrences(of: String(goodPayload), with: String(goodPayload.dropLast(2)) + "xx")
                    )
                ]
            ),
        ]
        var outcomes: [String: Int] = [:]
        for (name, headers) in forgeries { outcomes[name] = try await status(headers) }
        // Validly signed: the good token (its header cases) and the one outside the gate group.
        let cachedBefore = server.verifier?.cachedCount
        let ok1 = try await status([(Gate.jwtHeader, good)])
        let ok2 = try await status([
            (Gate.jwtHeader, good), (Gate.usernameHeader, "alice"), (Gate.groupsHeader, "Staff|T3 Users"),
        ])
        let cached = server.verifier?.cachedCount
        try await client.shutdown()
        await server.shutdown()
        alice.stop()
        map.remove()
        for (name, _) in forgeries { #expect(outcomes[name] == 403, "\(name)") }
        #expect(ok1 == 200 && ok2 == 200)
        #expect(alice.requestCount == 2, "only the two valid requests reached an upstream")
        #expect(cachedBefore == 2)
        #expect(cached == 2, "the valid token was verified once and then answered from the cache")
    }
}

@Suite struct SystemdProtocolTests {
    @Test func journalLinesCarryTheSyslogPriority() {
        #expect(JournalLogHandler.priority(.critical) == 2)
        #expect(JournalLogHandler.priority(.error) == 3)
        #expect(JournalLogHandler.priority(.warning) == 4)
        #expect(JournalLogHandler.priority(.notice) == 5)
        #expect(JournalLogHandler.priority(.info) == 6)
        #expect(JournalLogHandler.priority(.debug) == 7)
        #expect(
            JournalLogHandler.escape("a\nb\u{1b}[31m\u{9b}") == "a\\u{a}b\\u{1b}[31m\\u{9b}",
            "a value cannot start a new line"
        )
    }

    @Test func notifyReachesTheNotifySocket() throws {
        let scratch = try TempRoot("notify")
        let path = scratch.file("/notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(rc == 0)
        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        #expect(Systemd.notify("READY=1"))
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
        #expect(n == 7 && String(decoding: buf[0..<7], as: UTF8.self) == "READY=1")
    }

    @Test func listenFDsOnlyForThisProcess() {
        setenv("LISTEN_PID", "1", 1)
        setenv("LISTEN_FDS", "1", 1)
        #expect(Systemd.listenFDs().isEmpty, "descriptors meant for another process are not taken")
        setenv("LISTEN_PID", String(getpid()), 1)
        setenv("LISTEN_FDS", "2", 1)
        #expect(Systemd.listenFDs() == [3, 4])
        #expect(getenv("LISTEN_FDS") == nil, "the variables are not passed on")
    }
}

/// Socket activation: the sockets systemd passes are matched to the listeners by the address each is bound to, and
/// a metrics port someone else holds does not keep the proxy from serving.
@Suite(.serialized) struct InheritedSocketTests {
    /// A listening unix socket bound to `path`, as systemd would pass it.
    static func listeningUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0, listen(fd, 16) == 0 else { throw CocoaError(.fileWriteUnknown) }
        return fd
    }

    @Test func inheritedSocketsAreMatchedByAddressAndAForeignOneIsRefused() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        defer { map.remove() }
        try map.write(["alice": alice.port])
        let proxyPath = map.dir + "/dispatch.sock"
        let proxyFD = try Self.listeningUnix(proxyPath)
        #expect(Systemd.boundAddress(of: proxyFD) == .unix(path: proxyPath))
        // Someone holds the metrics port: the proxy serves all the same.
        let squatter = try TestHTTPServer.byteSink()
        var config = DispatchConfig()
        config.listen = .unix(path: proxyPath)
        config.metricsListen = .tcp(host: "127.0.0.1", port: squatter.port)
        config.dispatchFile = map.path
        config.frontProxyUsers = ["root"]
        let inherited = try await DispatchServer.start(
            config: config,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            inherited: [proxyFD]
        )
        #expect(inherited.metricsAddress == nil, "the metrics port is taken; the proxy still serves")
        let r = try requestOnNewConnection(inherited, headers: identity("alice"))
        #expect(r.status == 200)
        await inherited.shutdown()
        squatter.stop()
        alice.stop()

        let other = try Self.listeningUnix(map.dir + "/other.sock")
        config.metricsListen = .tcp(host: "127.0.0.1", port: 0)
        await #expect(throws: DispatchError.self) {
            _ = try await DispatchServer.start(config: config, inherited: [other])
        }
        close(other)
    }
}
