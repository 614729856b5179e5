import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import WorkstationCore

/// Errors of the dispatcher's listeners.
public enum DispatchError: Error, Sendable, CustomStringConvertible {
    /// A listener could not bind; another process may hold the address, or the socket directory is missing.
    case bindFailed(address: String, underlying: String)
    /// The configuration lets a local account act as another person (`DispatchConfig.securityProblems`).
    case insecure([String])
    /// A `front_proxy_users` entry names no account.
    case unknownAccount(String)
    /// Socket activation passed a socket other than `listen`.
    case inheritedSocketMismatch(expected: String, got: String)

    public var description: String {
        switch self {
        case .bindFailed(let address, let underlying):
            "cannot listen on \(address): \(underlying); free the address or change dispatch.listen / dispatch.metrics_listen"
        case .insecure(let problems):
            "refusing to start: " + problems.joined(separator: "; ")
        case .unknownAccount(let name):
            "dispatch.front_proxy_users: no account named '\(printable(name))'; name the front proxy's account (e.g. www-data), or create it first"
        case .inheritedSocketMismatch(let expected, let got):
            "the socket systemd passed is \(got), but dispatch.listen is \(expected); make ListenStream= in workstation-dispatch.socket and dispatch.listen the same path"
        }
    }
}

/// The running dispatcher: the proxy listener, the metrics listener and the reload timer.
///
/// The proxy speaks HTTP/1.1 (RFC 9112) to clients and upstreams, streams bodies in both directions with
/// backpressure, and after a WebSocket handshake (RFC 6455 section 4) relays bytes unchanged.
public final class DispatchServer: Sendable {
    public let config: DispatchConfig
    public let routes: RouteTable
    public let metrics: DispatchMetrics
    public let active: ActiveUsers
    public let tunnels: TunnelRegistry
    /// The bound proxy address (with the real port when `listen` asked for port 0).
    public let localAddress: SocketAddress?
    /// The bound metrics address.
    public let metricsAddress: SocketAddress?
    /// Idle kept-alive upstream connections, one pool per event loop.
    let pools: UpstreamPools
    /// The token verifier, when `dispatch.jwt` is set.
    let verifier: TokenVerifier?
    /// The request path (`FastPath`), which owns the listening socket.
    private let fastPath: FastPath
    private let closed: EventLoopPromise<Void>
    private let metricsChannel: Channel?
    private let reloadTask: RepeatedTask

    private init(
        config: DispatchConfig,
        routes: RouteTable,
        metrics: DispatchMetrics,
        active: ActiveUsers,
        tunnels: TunnelRegistry,
        pools: UpstreamPools,
        fastPath: FastPath,
        localAddress: SocketAddress?,
        closed: EventLoopPromise<Void>,
        metricsChannel: Channel?,
        reloadTask: RepeatedTask,
        verifier: TokenVerifier?
    ) {
        self.pools = pools
        self.verifier = verifier
        self.config = config
        self.routes = routes
        self.metrics = metrics
        self.active = active
        self.tunnels = tunnels
        self.fastPath = fastPath
        self.closed = closed
        self.metricsChannel = metricsChannel
        self.reloadTask = reloadTask
        self.localAddress = localAddress
        self.metricsAddress = metricsChannel?.localAddress
    }

    /// Loads the map, binds both listeners and starts the reload timer.
    /// - Throws: `DispatchError.bindFailed` when a listener cannot bind.
    ///
    /// - Parameters:
    ///   - inherited: listening sockets passed by systemd (`Systemd.listenFDs()`); the first serves the proxy
    ///     instead of binding `listen`, and must be bound to the same unix path.
    /// - Throws: `DispatchError.insecure` when the configuration lets a local account act as another person,
    ///   `.unknownAccount` for a front-proxy account that does not exist, `.bindFailed` when a listener cannot bind.
    public static func start(
        config: DispatchConfig,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "workstation.dispatch"),
        inherited: [Int32] = []
    ) async throws -> DispatchServer {
        let problems = config.securityProblems()
        if !problems.isEmpty { throw DispatchError.insecure(problems.map(\.message)) }
        let accounts = AccountIDs()
        var frontProxyUIDs: Set<uid_t> = []
        if config.identity == .peer {
            for name in config.frontProxyUsers {
                guard let uid = accounts.uid(of: name) else { throw DispatchError.unknownAccount(name) }
                frontProxyUIDs.insert(uid)
            }
        }
        let verifier = config.jwt.map { TokenVerifier(settings: $0, logger: logger) }
        if let verifier { await verifier.refresh() }
        let metrics = DispatchMetrics()
        let tunnels = TunnelRegistry()
        let routes = RouteTable(path: config.dispatchFile, logger: logger) { outcome in
            metrics.reloaded(outcome)
            if case .loaded(_, let dropped) = outcome {
                for user in dropped { tunnels.closeAll(of: user) }
            }
        }
        routes.refresh(force: true)
        let active = ActiveUsers(limit: config.maxActiveUsers)
        let pools = UpstreamPools(group: group)
        let shared = DispatchShared(
            config: config,
            routes: routes,
            active: active,
            tunnels: tunnels,
            metrics: metrics,
            logger: logger,
            pools: pools,
            frontProxyUIDs: frontProxyUIDs,
            verifier: verifier,
            accounts: accounts
        )

        // Socket activation: each inherited socket is matched to a listener by the address it is bound to.
        var proxyFD: Int32?
        var metricsFD: Int32?
        for fd in inherited {
            let bound = Systemd.boundAddress(of: fd)
            if bound == config.listen {
                proxyFD = fd
            } else if bound == config.metricsListen {
                metricsFD = fd
            } else {
                throw DispatchError.inheritedSocketMismatch(
                    expected: "\(config.listen) or \(config.metricsListen)",
                    got: bound.map { "\($0)" } ?? "an unknown socket"
                )
            }
        }
        if !inherited.isEmpty, proxyFD == nil {
            throw DispatchError.inheritedSocketMismatch(
                expected: "\(config.listen)",
                got: "no such socket among those passed"
            )
        }
        let listenFD: Int32
        if let fd = proxyFD {
            ListeningSocket.adopt(fd)
            listenFD = fd
        } else {
            listenFD = try ListeningSocket.bind(config.listen)
        }
        let isTCP: Bool
        if case .tcp = config.listen { isTCP = true } else { isTCP = false }
        let fastPath: FastPath
        do {
            fastPath = try FastPath(
                shared: shared,
                group: group,
                listenFD: listenFD,
                isTCP: isTCP,
                threads: Array(group.makeIterator()).count
            )
        } catch {
            _ = close(listenFD)
            throw error
        }
        fastPath.start()
        let localAddress = ListeningSocket.localAddress(listenFD, config.listen)

        var metricsBootstrap = ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics, routes: routes))
                }
            }
        if metricsFD == nil, case .tcp = config.metricsListen {
            metricsBootstrap = metricsBootstrap.serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        }
        // The metrics listener routes nothing: when its address is taken (another account bound the port while the
        // dispatcher restarted), the proxy serves anyway and the failure is logged at error priority.
        let metricsChannel: Channel?
        do {
            if let fd = metricsFD {
                metricsChannel = try await metricsBootstrap.withBoundSocket(fd).get()
            } else {
                metricsChannel = try await bind(metricsBootstrap, config.metricsListen)
            }
        } catch {
            logger.error(
                "metrics listener unavailable; serving without /metrics and /healthz",
                metadata: [
                    "listen": "\(config.metricsListen)", "error": .string("\(error)"),
                ]
            )
            metricsChannel = nil
        }
        let interval = TimeAmount.seconds(Int64(config.reloadIntervalSeconds))
        let reloadTask = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            routes.refresh()
            if let verifier { Task { await verifier.refresh() } }
        }
        // The watchdog is pinged from an event loop, and only while every fast-path loop turns (each does at least
        // once a second), so a loop that stops turning stops the pings.
        if let ping = Systemd.watchdogPingInterval() {
            _ = group.next().scheduleRepeatedTask(initialDelay: .nanoseconds(ping), delay: .nanoseconds(ping)) { _ in
                if fastPath.turned(within: UInt64(ping) + 2_000_000_000) { Systemd.notify("WATCHDOG=1") }
            }
        }
        logger.info(
            "dispatch listening",
            metadata: [
                "listen": "\(config.listen)", "metrics": "\(config.metricsListen)", "map": .string(config.dispatchFile),
                "identity": .string(config.identity.rawValue), "inherited": "\(!inherited.isEmpty)",
                "max_active_users": "\(config.maxActiveUsers)",
            ]
        )
        return DispatchServer(
            config: config,
            routes: routes,
            metrics: metrics,
            active: active,
            tunnels: tunnels,
            pools: pools,
            fastPath: fastPath,
            localAddress: localAddress,
            closed: group.next().makePromise(of: Void.self),
            metricsChannel: metricsChannel,
            reloadTask: reloadTask,
            verifier: verifier
        )
    }

    private static func bind(_ bootstrap: ServerBootstrap, _ address: ListenAddress) async throws -> Channel {
        do {
            switch address {
            case .tcp(let host, let port):
                return try await bootstrap.bind(host: host, port: port).get()
            case .unix(let path):
                return try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            }
        } catch {
            throw DispatchError.bindFailed(address: address.description, underlying: "\(error)")
        }
    }

    /// Stops listening, cancels the reload timer and closes open tunnels and idle upstream connections. In-flight
    /// requests on open connections are cut.
    public func shutdown() async {
        guard fastPath.stop() else { return }
        reloadTask.cancel()
        try? await metricsChannel?.close()
        for user in routes.current.users.keys { tunnels.closeAll(of: user) }
        pools.closeAll()
        closed.succeed()
    }

    /// Idle kept-alive upstream connections, in the fast path's pools and the full path's.
    public func idleUpstreamConnections() async -> Int {
        await pools.idleCount() + fastPath.idleUpstreamCount
    }

    deinit {
        // A server dropped without `shutdown` (a test's) still ends its threads and completes `closeFuture`.
        if fastPath.stop() { closed.succeed() }
    }

    /// Completes when the proxy listener closes (`shutdown`).
    public var closeFuture: EventLoopFuture<Void> { closed.futureResult }
}

/// `GET /healthz` (200 `ok` while the process serves) and `GET /metrics` (Prometheus text exposition format 0.0.4).
final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let metrics: DispatchMetrics
    private let routes: RouteTable
    private var head: HTTPRequestHead?

    init(metrics: DispatchMetrics, routes: RouteTable) {
        self.metrics = metrics
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let path = h.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? h.uri
            let (status, type, body): (HTTPResponseStatus, String, String)
            switch (h.method, path) {
            case (.GET, "/healthz"), (.HEAD, "/healthz"):
                (status, type, body) = (.ok, "text/plain; charset=utf-8", "ok\n")
            case (.GET, "/metrics"), (.HEAD, "/metrics"):
                (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics.render())
            default:
                (status, type, body) = (.notFound, "text/plain; charset=utf-8", "not found; try /healthz or /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            if !h.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))),
                promise: nil
            )
            if h.method != .HEAD {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                    promise: nil
                )
            }
            let keepAlive = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
