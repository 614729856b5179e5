import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import WorkstationCore

@testable import WorkstationDispatch

#if canImport(Glibc)
import Glibc
#endif

/// `ClientHandler` in its real pipeline (NIO's request decoder in front), on `EmbeddedChannel`s: the client's
/// connection, and each upstream connection the handler opens (through `DispatchShared.connectUpstream`). Every byte
/// each side sees is checked, with no socket and no thread. The peer's uid is given by the test (`peerUID`); the
/// upstream owner check is the socket tests' (FrontDoorTests), off here.
@Suite struct ClientHandlerEmbeddedTests {
    static let frontProxy: uid_t = 33

    /// A client connection from `peer`, its upstream connections, and the dispatcher state they share.
    final class Rig {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let shared: DispatchShared
        let map: MapDir

        init(peer: uid_t?, users: [String: Int] = ["alice": 8001, "bob": 8002]) throws {
            map = try MapDir()
            try map.write(users)
            var config = DispatchConfig()
            config.dispatchFile = map.path
            config.verifyUpstreamOwner = false
            var logger = Logger(label: "test.embedded")
            logger.logLevel = .critical
            let routes = RouteTable(path: map.path, logger: logger)
            routes.refresh(force: true)
            let loop = self.loop
            let opened = Opened()
            shared = DispatchShared(
                config: config,
                routes: routes,
                active: ActiveUsers(limit: 8),
                tunnels: TunnelRegistry(),
                metrics: DispatchMetrics(),
                logger: logger,
                pools: UpstreamPools(group: loop),
                frontProxyUIDs: [Self.frontProxyUID],
                peerUID: { _ in peer },
                connectUpstream: { _, port, initialize in
                    let channel = EmbeddedChannel(loop: loop)
                    opened.list.append((channel, port))
                    return initialize(channel).flatMap {
                        channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: port))
                    }.map { channel }
                }
            )
            self.opened = opened
            client = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addDispatchClientHandlers(
                shared: shared,
                pool: shared.pools.pool(for: loop)
            )
            try client.connect(to: SocketAddress(unixDomainSocketPath: "/run/test.sock")).wait()
        }

        static let frontProxyUID = ClientHandlerEmbeddedTests.frontProxy
        /// Upstream connections in the order the handler opened them, with the port each was opened to. Written by
        /// the connector, on the test's thread (an embedded loop runs where it is driven).
        final class Opened: @unchecked Sendable {
            var list: [(EmbeddedChannel, Int)] = []
        }
        private let opened: Opened

        var upstreamCount: Int { opened.list.count }
        func upstream(_ i: Int) -> EmbeddedChannel { opened.list[i].0 }
        func upstreamPort(_ i: Int) -> Int { opened.list[i].1 }

        /// Sends `text` from the client.
        func send(_ text: String) throws {
            try client.writeInbound(ByteBuffer(string: text))
            loop.run()
        }

        /// Everything the dispatcher wrote to the client so far.
        func clientReceived() throws -> String { try Self.drain(client) }

        /// Everything the dispatcher wrote to upstream connection `i` so far.
        func upstreamReceived(_ i: Int) throws -> String { try Self.drain(upstream(i)) }

        /// The upstream's answer on connection `i`.
        func answer(_ i: Int, _ text: String) throws {
            try upstream(i).writeInbound(ByteBuffer(string: text))
            loop.run()
        }

        static func drain(_ channel: EmbeddedChannel) throws -> String {
            var text = ""
            while let b = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: b) }
            return text
        }

        func close() {
            _ = try? client.finish()
            for (c, _) in opened.list { _ = try? c.finish() }
            map.remove()
        }
    }

    static func request(_ path: String = "/", user: String = "alice", extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: t3\r\nX-authentik-username: \(user)\r\nX-authentik-groups: Staff|T3 Users\r\n"
            + extra + "\r\n"
    }

    static let ok =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\nhello"

    @Test func aRequestGoesUpstreamWithOnlyTheCheckedIdentityAndItsResponseComesBack() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(Self.request(extra: "X-authentik-email: mallory@example.org\r\nProxy-Authorization: x\r\n"))
        #expect(rig.upstreamCount == 1)
        #expect(rig.upstreamPort(0) == 8001)
        #expect(
            try rig.upstreamReceived(0)
                == "GET / HTTP/1.1\r\nHost: t3\r\nX-authentik-username: alice\r\n\r\n"
        )
        try rig.answer(0, Self.ok)
        #expect(try rig.clientReceived() == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        #expect(rig.client.isActive)
    }

    @Test func anAccountThatIsNotTheFrontProxyIsRefusedAndNothingGoesUpstream() throws {
        for peer: uid_t? in [1000, nil] {
            let rig = try Rig(peer: peer)
            defer { rig.close() }
            try rig.send(Self.request() + Self.request("/again"))
            let reply = try rig.clientReceived()
            #expect(reply.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "peer \(String(describing: peer))")
            #expect(reply.contains("Connection: close\r\n"))
            #expect(rig.upstreamCount == 0)
            #expect(!rig.client.isActive)
        }
    }

    @Test func pipelinedRequestsGoUpstreamOneAtATimeOnOneConnection() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(Self.request("/a") + Self.request("/b"))
        #expect(try rig.upstreamReceived(0).hasPrefix("GET /a "))
        #expect(try rig.upstreamReceived(0) == "")
        try rig.answer(0, Self.ok)
        #expect(try rig.upstreamReceived(0).hasPrefix("GET /b "))
        try rig.answer(0, Self.ok)
        #expect(
            try rig.clientReceived() == String(repeating: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", count: 2)
        )
        #expect(rig.upstreamCount == 1)
    }

    @Test func anotherUserOnTheSameClientConnectionGetsAnotherUpstreamConnection() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(Self.request())
        try rig.answer(0, Self.ok)
        try rig.send(Self.request(user: "bob"))
        #expect(rig.upstreamCount == 2)
        #expect(rig.upstreamPort(1) == 8002)
        #expect(try rig.upstreamReceived(1).contains("X-authentik-username: bob\r\n"))
    }

    @Test func anUnknownUserIsRefusedAfterTheFirstRequestWasServed() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(Self.request())
        try rig.answer(0, Self.ok)
        _ = try rig.clientReceived()
        try rig.send(Self.request(user: "mallory"))
        #expect(try rig.clientReceived().hasPrefix("HTTP/1.1 403 Forbidden\r\n"))
        #expect(!rig.client.isActive)
    }

    @Test func aSwitchNobodyAskedForIsA502() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(Self.request())
        try rig.answer(0, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
        #expect(try rig.clientReceived().hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(!rig.client.isActive)
        #expect(!rig.upstream(0).isActive)
    }

    @Test func anHTTP10ClientGetsAChunkedBodyAsPlainBytesThenTheClose() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try rig.send(
            "GET / HTTP/1.0\r\nX-authentik-username: alice\r\nX-authentik-groups: T3 Users\r\n\r\n"
        )
        try rig.answer(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        #expect(try rig.clientReceived() == "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nhello")
        #expect(!rig.client.isActive)
    }

    @Test func aRequestThatDoesNotParseIsA400() throws {
        let rig = try Rig(peer: Self.frontProxy)
        defer { rig.close() }
        try? rig.send("GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        #expect(try rig.clientReceived().hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(rig.upstreamCount == 0)
    }
}
