import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import WorkstationCore

/// Everything the per-connection handlers share. Thread-safe.
final class DispatchShared: Sendable {
    let config: DispatchConfig
    let routes: RouteTable
    let active: ActiveUsers
    let tunnels: TunnelRegistry
    let metrics: DispatchMetrics
    let logger: Logger
    let pools: UpstreamPools
    let trusted: TrustedPeers

    init(
        config: DispatchConfig, routes: RouteTable, active: ActiveUsers, tunnels: TunnelRegistry, metrics: DispatchMetrics,
        logger: Logger, pools: UpstreamPools
    ) {
        self.config = config
        self.pools = pools
        self.trusted = TrustedPeers(config)
        self.routes = routes
        self.active = active
        self.tunnels = tunnels
        self.metrics = metrics
        self.logger = logger
    }
}

/// One proxied request/response exchange on a client connection.
private final class Exchange {
    let user: String
    let port: Int
    let requestVersion: HTTPVersion
    let method: HTTPMethod
    let keepAlive: Bool
    let upgrade: Bool
    let started: NIODeadline
    var status = 0
    var responseStarted = false
    var closeAfter = false
    /// The upstream's 101 answer, held until its end is decoded.
    var switchHead: HTTPResponseHead?
    /// The head as forwarded, kept for one retry on a fresh connection.
    let upstreamHead: HTTPRequestHead
    /// Whether any body part or the request's end was forwarded.
    var sentBody = false
    var requestEnded = false
    var endTrailers: HTTPHeaders?
    var retried = false

    init(user: String, port: Int, head: HTTPRequestHead, upstreamHead: HTTPRequestHead, upgrade: Bool) {
        self.user = user
        self.port = port
        self.requestVersion = head.version
        self.method = head.method
        self.keepAlive = head.isKeepAlive
        self.upgrade = upgrade
        self.upstreamHead = upstreamHead
        self.started = .now()
    }

    /// A request that may be sent again when a reused connection closed before answering (RFC 9112 section 9.3.1:
    /// only idempotent methods; RFC 9110 section 9.2.2), and only when no body byte was forwarded.
    var retryable: Bool {
        guard !retried, !sentBody, !responseStarted else { return false }
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}

/// The client side of one connection: gate, route, forward, and on a WebSocket 101 hand both sockets to a byte
/// tunnel. Requests on one connection are handled one at a time: a pipelined request (RFC 9112 section 9.3.2) waits,
/// with reading paused, until the response before it has ended. Reading is not paused between ordinary requests
/// (unlike `HTTPServerPipelineHandler`, which costs two `epoll_ctl` calls per request).
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: DispatchShared
    private let codec: [RemovableChannelHandler]
    private var context: ChannelHandlerContext?
    private var peerTrusted = false
    /// Identity headers already checked on this connection (`Gate.decide`).
    private var checked: CheckedIdentity?

    private enum State {
        case idle
        case refusing
        case proxying(Exchange)
        case upgraded
    }
    private var state = State.idle
    private var upstream: UpstreamHandler?
    private var pendingRead = false
    /// Parts of pipelined requests that arrived while an earlier response was still going out, in order.
    private var queued: [HTTPServerRequestPart] = []
    /// Idle upstream connections of this channel's event loop; nil disables pooling.
    private let pool: UpstreamPool?

    /// - Parameters:
    ///   - codec: the HTTP handlers to remove on upgrade, in removal order, decoder last.
    ///   - pool: the upstream pool of the event loop this channel runs on.
    init(shared: DispatchShared, codec: [RemovableChannelHandler], pool: UpstreamPool?) {
        self.shared = shared
        self.codec = codec
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { peerTrusted = shared.trusted.contains(context.channel.remoteAddress) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        peerTrusted = shared.trusted.contains(context.channel.remoteAddress)
        context.fireChannelActive()
    }

    // MARK: inbound from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !queued.isEmpty {
            queued.append(part)
            return
        }
        handle(context: context, part)
    }

    private func handle(context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            switch state {
            case .idle: begin(context: context, head: head)
            case .proxying: queued.append(part)  // pipelined: waits for the current response
            case .refusing, .upgraded: break
            }
        case .body(let body):
            if case .proxying(let ex) = state {
                ex.sentBody = true
                upstream?.send(.body(.byteBuffer(body)))
            }
        case .end(let trailers):
            if case .proxying(let ex) = state {
                ex.requestEnded = true
                ex.endTrailers = trailers
                upstream?.send(.end(trailers))
                upstream?.flush()
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    /// Handles queued pipelined parts once the connection is idle again, up to the next request that must wait.
    private func drainQueued(context: ChannelHandlerContext) {
        while !queued.isEmpty {
            if case .head = queued[0], !isIdle { break }
            handle(context: context, queued.removeFirst())
        }
        upstream?.flush()
        if queued.isEmpty { upstreamWritable() }
    }

    private var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    private func begin(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard case .idle = state else { return }
        let decision = Gate.decide(
            headers: head.headers, peerTrusted: peerTrusted, gateGroup: shared.config.gateGroup, checked: &checked
        ) { shared.routes.lookup($0) }
        switch decision {
        case .refuse(let status, let reason):
            shared.logger.notice("refused", metadata: ["status": "\(status)", "reason": .string(reason)])
            refuse(context: context, head: head, status: .init(statusCode: status))
        case .route(let user, let port):
            guard shared.active.acquire(user) else {
                shared.logger.notice("refused", metadata: ["status": "429", "user": .string(user), "reason": "active user ceiling reached"])
                refuse(context: context, head: head, status: .tooManyRequests)
                return
            }
            shared.metrics.activeUsers.set(Double(shared.active.activeCount))
            let webSocket = Gate.isWebSocketUpgrade(head.headers)
            let upgrade = webSocket || head.headers.contains(name: "upgrade")
            let outHead = HTTPRequestHead(
                version: .http1_1, method: head.method, uri: head.uri,
                headers: Gate.upstreamHeaders(head.headers, user: user, upgrade: webSocket))
            let exchange = Exchange(user: user, port: port, head: head, upstreamHead: outHead, upgrade: upgrade)
            state = .proxying(exchange)
            if let up = upstream, up.port == port, up.user == user, up.usable {
                up.send(.head(outHead))
            } else {
                if let old = upstream {
                    upstream = nil
                    release(old)
                }
                if let up = pool?.take(user: user, port: port) {
                    up.attach(self)
                    upstream = up
                    up.send(.head(outHead))
                } else {
                    let up = UpstreamHandler(client: self, user: user, port: port, eventLoop: context.eventLoop)
                    upstream = up
                    up.send(.head(outHead))
                    up.connect(shared: shared)
                }
            }
        }
    }

    private func refuse(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus) {
        state = .refusing
        let body: String
        var headers = HTTPHeaders()
        switch status {
        case .tooManyRequests:
            body = "<!doctype html><title>workstation is full</title><h1>All workstation seats are in use</h1><p>Too many people are working right now. Try again in a few minutes.</p>\n"
            headers.add(name: "Retry-After", value: "60")
            headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        case .badGateway:
            body = "<!doctype html><title>workstation unavailable</title><h1>Your workstation is not answering</h1><p>It may be starting; try again shortly.</p>\n"
            headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        case .badRequest:
            body = "bad request\n"
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        default:
            body = "<!doctype html><title>forbidden</title><h1>Forbidden</h1><p>You are not allowed to use this workstation. Ask an administrator to add you to the roster.</p>\n"
            headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        }
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Cache-Control", value: "no-store")
        shared.metrics.countResponse(Int(status.code))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    // MARK: from the upstream

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let context, case .proxying(let ex) = state else { return }
        ex.responseStarted = true
        ex.status = Int(head.status.code)
        shared.metrics.upstreamLatency.recordNanoseconds((NIODeadline.now() - ex.started).nanoseconds)
        if ex.upgrade && head.status == .switchingProtocols {
            // The decoder reports the 101's end right after its head; switch once it has, so that no HTTP part
            // reaches the byte tunnel.
            ex.switchHead = head
            return
        }
        var headers = Gate.stripHopByHop(head.headers)
        if ex.method == .HEAD && !headers.contains(name: "content-length") && !headers.contains(name: "transfer-encoding") {
            headers.add(name: "Content-Length", value: "0")
        }
        // An upgrade request the upstream declined leaves the request decoder stopped (it expects the switch):
        // finish this response and close.
        ex.closeAfter = !ex.keepAlive || ex.upgrade
        if !head.isKeepAlive { upstream?.reusable = false }
        if ex.closeAfter {
            headers.add(name: "Connection", value: "close")
        } else if ex.requestVersion == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: ex.requestVersion, status: head.status, headers: headers))), promise: nil)
    }

    func upstreamBody(_ body: ByteBuffer) {
        guard let context, case .proxying = state else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    func upstreamEnd(_ trailers: HTTPHeaders?) {
        guard let context, case .proxying(let ex) = state else { return }
        if let head = ex.switchHead {
            switchToTunnel(context: context, exchange: ex, head: head)
            return
        }
        state = .idle
        finish(ex)
        // A response that ended before the request did leaves a partial request on the upstream connection.
        if !ex.requestEnded || ex.upgrade { upstream?.reusable = false }
        if ex.closeAfter, let up = upstream {
            upstream = nil
            release(up)
        }
        if ex.closeAfter {
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            if !queued.isEmpty { drainQueued(context: context) }
        }
    }

    func upstreamFlush() { context?.flush() }

    /// The upstream closed or could not be reached.
    func upstreamFailed(_ up: UpstreamHandler, connectError: Error?) {
        guard up === upstream else { return }
        upstream = nil
        guard let context, case .proxying(let ex) = state else { return }
        if connectError == nil, up.requestsSent > 1, ex.retryable {
            // A kept-alive connection the upstream closed as this request went out (its idle timeout): send the
            // request once more on a new connection, as RFC 9112 section 9.3.1 allows for idempotent requests.
            ex.retried = true
            let fresh = UpstreamHandler(client: self, user: ex.user, port: ex.port, eventLoop: context.eventLoop)
            upstream = fresh
            fresh.send(.head(ex.upstreamHead))
            if ex.requestEnded { fresh.send(.end(ex.endTrailers)) }
            fresh.connect(shared: shared)
            return
        }
        if !ex.responseStarted {
            shared.logger.warning("upstream unavailable", metadata: [
                "user": .string(ex.user), "port": "\(ex.port)",
                "error": .string(connectError.map { "\($0)" } ?? "closed before responding"),
            ])
            finish(ex)
            refuseAfterFailure(context: context, version: ex.requestVersion, method: ex.method)
        } else {
            finish(ex)
            state = .refusing
            context.close(promise: nil)
        }
    }

    private func refuseAfterFailure(context: ChannelHandlerContext, version: HTTPVersion, method: HTTPMethod) {
        var head = HTTPRequestHead(version: version, method: method, uri: "/")
        head.headers = [:]
        refuse(context: context, head: head, status: .badGateway)
    }

    /// Hands an upstream connection no longer needed by this client to the pool (which keeps it only when it is
    /// idle and reusable), or closes it.
    private func release(_ up: UpstreamHandler) {
        if let pool { pool.put(up) } else { up.closeQuietly() }
    }

    private func finish(_ ex: Exchange) {
        if ex.status != 0 { shared.metrics.countResponse(ex.status) }
        shared.active.release(ex.user)
        shared.metrics.activeUsers.set(Double(shared.active.activeCount))
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        if !queued.isEmpty {
            pendingRead = true  // no more reading while pipelined requests wait
        } else if let up = upstream, !up.writable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func upstreamWritable() {
        if pendingRead, queued.isEmpty, let context {
            pendingRead = false
            context.read()
        }
    }

    var writable: Bool { context?.channel.isWritable ?? true }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.clientWritable() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: teardown

    func channelInactive(context: ChannelHandlerContext) {
        let up = upstream
        upstream = nil
        if case .proxying(let ex) = state {
            ex.status = 0  // the response never completed; not counted
            finish(ex)
            up?.closeQuietly()
        } else if let up {
            release(up)  // between requests: the upstream connection is idle
        }
        state = .refusing
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError, case .idle = state {
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            head.headers = [:]
            refuse(context: context, head: head, status: .badRequest)
            return
        }
        context.close(promise: nil)
    }

    // MARK: WebSocket

    /// Answers the client's upgrade with the upstream's 101, then replaces the HTTP handlers on both channels with
    /// a byte tunnel (RFC 6455 section 4: after the handshake the connection carries frames, not HTTP).
    private func switchToTunnel(context: ChannelHandlerContext, exchange ex: Exchange, head: HTTPResponseHead) {
        guard let up = upstream, let upChannel = up.channel else { return }
        state = .upgraded
        shared.metrics.countResponse(101)
        var headers = Gate.stripHopByHop(head.headers)
        headers.add(name: "Connection", value: "Upgrade")
        if let proto = head.headers["upgrade"].first { headers.add(name: "Upgrade", value: proto) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: ex.requestVersion, status: .switchingProtocols, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)

        let clientChannel = context.channel
        let clientGlue = GlueHandler()
        let upstreamGlue = GlueHandler()
        GlueHandler.pair(clientGlue, upstreamGlue)
        let user = ex.user
        let shared = self.shared
        shared.tunnels.add(user, clientChannel)
        shared.metrics.openWebSockets.increment()
        shared.logger.info("websocket opened", metadata: ["user": .string(user)])
        clientChannel.closeFuture.whenComplete { _ in
            shared.tunnels.remove(user, clientChannel)
            shared.active.release(user)
            shared.metrics.activeUsers.set(Double(shared.active.activeCount))
            shared.metrics.openWebSockets.decrement()
            shared.logger.info("websocket closed", metadata: ["user": .string(user)])
        }
        do {
            let clientOps = clientChannel.pipeline.syncOperations
            let upOps = upChannel.pipeline.syncOperations
            try clientOps.addHandler(clientGlue, position: .after(self))
            try upOps.addHandler(upstreamGlue, position: .after(up))
            upstream = nil
            // Client side: everything HTTP goes; the request decoder last, so bytes it held reach the glue.
            let decoder = codec.last
            for h in codec.dropLast() { clientOps.removeHandler(h, promise: nil) }
            clientOps.removeHandler(context: context, promise: nil)
            let clientDecoderGone = clientChannel.eventLoop.makePromise(of: Void.self)
            if let decoder { clientOps.removeHandler(decoder, promise: clientDecoderGone) } else { clientDecoderGone.succeed() }
            // Upstream side: same, its response decoder last (it may hold the first frames).
            let upstreamDecoderGone = clientChannel.eventLoop.makePromise(of: Void.self)
            up.removeHTTP(decoderRemoved: upstreamDecoderGone)
            clientDecoderGone.futureResult.and(upstreamDecoderGone.futureResult).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    clientGlue.release()
                    upstreamGlue.release()
                case .failure:
                    clientChannel.close(promise: nil)
                    upChannel.close(promise: nil)
                }
            }
        } catch {
            shared.logger.error("websocket switch failed", metadata: ["user": .string(user), "error": "\(error)"])
            clientChannel.close(promise: nil)
            upChannel.close(promise: nil)
        }
    }
}

/// The upstream side of a client connection: one HTTP/1.1 connection to `127.0.0.1:port`, reused for the
/// client's next request to the same user, and kept in its event loop's `UpstreamPool` when the client leaves.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let user: String
    let port: Int
    private let eventLoop: EventLoop
    private var client: ClientHandler?
    private(set) var channel: Channel?
    private var context: ChannelHandlerContext?
    private var pending: [HTTPClientRequestPart] = []
    private var connecting = true
    private var closed = false
    /// False once the upstream said `Connection: close`; the next request opens a new connection.
    var reusable = true
    private var pendingRead = false
    private var encoder: RemovableChannelHandler?
    private var decoder: RemovableChannelHandler?
    /// Request heads sent on this connection (more than one: a kept-alive connection).
    private(set) var requestsSent = 0
    /// Set while the connection waits in a pool (no client); the pool that holds it.
    private(set) var idleSince: NIODeadline?
    private weak var pool: UpstreamPool?

    init(client: ClientHandler, user: String, port: Int, eventLoop: EventLoop) {
        self.client = client
        self.user = user
        self.port = port
        self.eventLoop = eventLoop
    }

    var usable: Bool { !closed && reusable && (connecting || (channel?.isActive ?? false)) }
    /// Connected, reusable and between exchanges' ends: may wait in a pool.
    var idleReusable: Bool { !closed && reusable && !connecting && context != nil && (channel?.isActive ?? false) }

    /// Hands this idle connection to `client` (taken from a pool).
    func attach(_ client: ClientHandler) {
        self.client = client
        self.pool = nil
        self.idleSince = nil
    }

    /// Parks this connection in `pool` (no client).
    func park(in pool: UpstreamPool, since: NIODeadline) {
        self.client = nil
        self.pool = pool
        self.idleSince = since
        // Keep reading while idle, so that the upstream closing the connection is noticed.
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }
    var writable: Bool { connecting ? false : (channel?.isWritable ?? true) }

    func connect(shared: DispatchShared) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let me = bound.value
                    let encoder = HTTPRequestEncoder()
                    let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
                    me.encoder = encoder
                    me.decoder = decoder
                    try channel.pipeline.syncOperations.addHandlers([encoder, decoder, me])
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .assumeIsolated()
            .whenComplete { result in
                let me = bound.value
                switch result {
                case .success(let channel):
                    me.connecting = false
                    me.channel = channel
                    if me.closed {
                        channel.close(promise: nil)
                        return
                    }
                    for part in me.pending { channel.write(me.wrapOutboundOut(part), promise: nil) }
                    me.pending.removeAll()
                    channel.flush()
                    me.client?.upstreamWritable()
                case .failure(let error):
                    me.connecting = false
                    me.closed = true
                    me.pending.removeAll()
                    let c = me.client
                    me.client = nil
                    c?.upstreamFailed(me, connectError: error)
                }
            }
    }

    func send(_ part: HTTPClientRequestPart) {
        if case .head = part { requestsSent += 1 }
        if connecting {
            pending.append(part)
        } else if let context {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }

    func flush() {
        if !connecting { context?.flush() }
    }

    func closeQuietly() {
        closed = true
        client = nil
        channel?.close(promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client else {
            // An idle upstream has nothing to say; anything it sends makes the connection unusable.
            closeQuietly()
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head): client.upstreamHead(head)
        case .body(let body): client.upstreamBody(body)
        case .end(let trailers): client.upstreamEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        client?.upstreamFlush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        let c = client
        client = nil
        pool?.remove(self)
        pool = nil
        c?.upstreamFailed(self, connectError: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let client, !client.writable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func clientWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { client?.upstreamWritable() }
        context.fireChannelWritabilityChanged()
    }

    /// Removes the HTTP codec and this handler, leaving the glue handler in charge.
    func removeHTTP(decoderRemoved: EventLoopPromise<Void>) {
        guard let context, let channel else {
            decoderRemoved.fail(ChannelError.ioOnClosedChannel)
            return
        }
        client = nil
        let ops = channel.pipeline.syncOperations
        if let encoder { ops.removeHandler(encoder, promise: nil) }
        ops.removeHandler(context: context, promise: nil)
        if let decoder { ops.removeHandler(decoder, promise: decoderRemoved) } else { decoderRemoved.succeed() }
    }
}

/// Idle kept-alive upstream connections of one event loop, so that a client connection that closes does not
/// cost the next one a new upstream connection (the role of nginx's `keepalive` in an `upstream` block).
///
/// Confined to its event loop (no lock; `take` and `put` assert it); other threads reach it only through
/// `eventLoop.execute`/`submit`, hence `@unchecked Sendable`. Keyed by user and port; at most
/// `maxIdlePerUpstream` connections wait per key; one idle for `idleTimeout` (below Node.js's default 5 s
/// keep-alive timeout) is no longer handed out and is closed by the next sweep (within 1.5 `idleTimeout`); a
/// connection the upstream closes or writes to while idle is dropped.
final class UpstreamPool: @unchecked Sendable {
    private struct Key: Hashable {
        var user: String
        var port: Int
    }
    private var idle: [Key: [UpstreamHandler]] = [:]
    /// One sweep timer for the whole pool (a timer per parked connection would pile up under connection churn).
    private var sweepScheduled = false
    let eventLoop: EventLoop
    let maxIdlePerUpstream: Int
    let idleTimeout: TimeAmount

    init(eventLoop: EventLoop, maxIdlePerUpstream: Int = 16, idleTimeout: TimeAmount = .seconds(4)) {
        self.eventLoop = eventLoop
        self.maxIdlePerUpstream = maxIdlePerUpstream
        self.idleTimeout = idleTimeout
    }

    /// Number of idle connections held.
    var count: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// The most recently parked live connection to `user`'s `port`, or nil.
    func take(user: String, port: Int) -> UpstreamHandler? {
        assert(eventLoop.inEventLoop)
        let key = Key(user: user, port: port)
        let now = NIODeadline.now()
        while let up = idle[key]?.popLast() {
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if up.idleReusable, let since = up.idleSince, now - since < idleTimeout { return up }
            up.closeQuietly()
        }
        return nil
    }

    /// Keeps `up` for a later client, or closes it when it is not reusable or the pool is full for its key.
    func put(_ up: UpstreamHandler) {
        assert(eventLoop.inEventLoop)
        let key = Key(user: up.user, port: up.port)
        guard up.idleReusable, idle[key, default: []].count < maxIdlePerUpstream else {
            up.closeQuietly()
            return
        }
        up.park(in: self, since: .now())
        idle[key, default: []].append(up)
        scheduleSweep()
    }

    /// Closes, every half `idleTimeout` while the pool holds connections, those idle for `idleTimeout` or longer
    /// (`take` never hands those out either).
    private func scheduleSweep() {
        guard !sweepScheduled else { return }
        sweepScheduled = true
        eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(idleTimeout.nanoseconds / 2)) { [weak self] in
            guard let self else { return }
            self.sweepScheduled = false
            let now = NIODeadline.now()
            var expired: [UpstreamHandler] = []
            for (key, list) in self.idle {
                let fresh = list.filter { now - ($0.idleSince ?? now) < self.idleTimeout }
                if fresh.count == list.count { continue }
                expired += list.filter { up in !fresh.contains { $0 === up } }
                self.idle[key] = fresh.isEmpty ? nil : fresh
            }
            for up in expired { up.closeQuietly() }
            if !self.idle.isEmpty { self.scheduleSweep() }
        }
    }

    /// Forgets `up` (it closed while idle).
    func remove(_ up: UpstreamHandler) {
        let key = Key(user: up.user, port: up.port)
        idle[key]?.removeAll { $0 === up }
        if idle[key]?.isEmpty == true { idle[key] = nil }
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for up in all { up.closeQuietly() }
    }
}

/// One `UpstreamPool` per event loop of the dispatcher's group, fixed at start.
final class UpstreamPools: @unchecked Sendable {
    // Immutable after init; each pool is touched only on its own event loop.
    private let pools: [ObjectIdentifier: UpstreamPool]

    init(group: EventLoopGroup) {
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = UpstreamPool(eventLoop: loop) }
        self.pools = pools
    }

    /// The pool of `loop`; call on `loop`.
    func pool(for loop: EventLoop) -> UpstreamPool? {
        pools[ObjectIdentifier(loop)]
    }

    /// Closes the idle connections of every pool, each on its own loop.
    func closeAll() {
        for pool in pools.values {
            pool.eventLoop.execute { pool.closeAll() }
        }
    }

    /// Idle connections held by all pools; call from outside the loops (tests, metrics).
    func idleCount() async -> Int {
        var n = 0
        for pool in pools.values {
            n += (try? await pool.eventLoop.submit { pool.count }.get()) ?? 0
        }
        return n
    }
}

/// Relays bytes between two channels with backpressure (a read is held while the partner cannot write).
/// After a WebSocket handshake both sides of the tunnel run one of these.
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Writes held while the HTTP decoder still sits in this channel (it would see them as HTTP parts).
    private var held: [NIOAny]? = []

    /// Sends the held writes; from now on writes go straight through.
    func release() {
        guard let h = held else { return }
        held = nil
        for d in h { context?.write(d, promise: nil) }
        context?.flush()
    }

    static func pair(_ a: GlueHandler, _ b: GlueHandler) {
        a.partner = b
        b.partner = a
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    private func partnerWrite(_ data: NIOAny) {
        if held != nil { held!.append(data) } else { context?.write(data, promise: nil) }
    }
    private func partnerFlush() { if held == nil { context?.flush() } }
    private func partnerClose() { context?.close(promise: nil) }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose()
        partner = nil
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { partner?.partnerClose() }
        context.fireUserInboundEventTriggered(event)
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }
    func read(context: ChannelHandlerContext) {
        if let partner, !partner.partnerWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }
}
