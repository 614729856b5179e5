import Logging
import NIOCore
import NIOPosix
import WorkstationCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything the per-connection handlers share. Thread-safe.
final class DispatchShared: Sendable {
    /// Opens a TCP connection to `127.0.0.1:port` on `eventLoop`, runs `initialize` on its channel (which adds the
    /// `UpstreamHandler`), and completes with the connected channel. The OS boundary of the upstream side:
    /// `ClientBootstrap` with `TCP_NODELAY` and a 5 s connect timeout, or an `EmbeddedChannel` in tests.
    typealias UpstreamConnector =
        @Sendable (
            _ eventLoop: EventLoop, _ port: Int, _ initialize: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
        ) -> EventLoopFuture<Channel>

    let config: DispatchConfig
    let routes: RouteTable
    let active: ActiveUsers
    let tunnels: TunnelRegistry
    let metrics: DispatchMetrics
    let logger: Logger
    let pools: UpstreamPools
    let trusted: TrustedPeers
    /// `peer` mode: the uids whose connections are believed (the front proxy's accounts).
    let frontProxyUIDs: Set<uid_t>
    /// Set when `dispatch.jwt` is configured: every request must carry a valid `X-authentik-jwt`.
    let verifier: TokenVerifier?
    /// os_user -> uid, for the check of each upstream connection's acceptor.
    let accounts: AccountIDs
    /// The uid of a client connection's peer (`SocketOwners.peerUID`: `SO_PEERCRED`, socket(7)); nil when the
    /// kernel names none.
    let peerUID: @Sendable (Channel) -> uid_t?
    let connectUpstream: UpstreamConnector

    init(
        config: DispatchConfig,
        routes: RouteTable,
        active: ActiveUsers,
        tunnels: TunnelRegistry,
        metrics: DispatchMetrics,
        logger: Logger,
        pools: UpstreamPools,
        frontProxyUIDs: Set<uid_t> = [],
        verifier: TokenVerifier? = nil,
        accounts: AccountIDs = AccountIDs(),
        peerUID: @escaping @Sendable (Channel) -> uid_t? = { SocketOwners.peerUID(of: $0) },
        connectUpstream: @escaping UpstreamConnector = DispatchShared.connectByTCP
    ) {
        self.frontProxyUIDs = frontProxyUIDs
        self.verifier = verifier
        self.accounts = accounts
        self.config = config
        self.pools = pools
        self.trusted = TrustedPeers(config)
        self.routes = routes
        self.active = active
        self.tunnels = tunnels
        self.metrics = metrics
        self.logger = logger
        self.peerUID = peerUID
        self.connectUpstream = connectUpstream
    }

    /// The production `UpstreamConnector`.
    static func connectByTCP(
        eventLoop: EventLoop,
        port: Int,
        initialize: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            // TCP_NODELAY is a TCP-level option (tcp(7)); as a socket-level option it would be SO_DEBUG.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer(initialize)
            .connect(host: "127.0.0.1", port: port)
    }
}

/// The socket that accepted an upstream connection does not belong to the routed person.
struct UpstreamOwnerError: Error, CustomStringConvertible {
    var description: String
}
