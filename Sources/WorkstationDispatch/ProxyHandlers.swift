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

    init(config: DispatchConfig, routes: RouteTable, active: ActiveUsers, tunnels: TunnelRegistry, metrics: DispatchMetrics, logger: Logger) {
        self.config = config
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

    init(user: String, port: Int, head: HTTPRequestHead, upgrade: Bool) {
        self.user = user
        self.port = port
        self.requestVersion = head.version
        self.method = head.method
        self.keepAlive = head.isKeepAlive
        self.upgrade = upgrade
        self.started = .now()
    }
}

/// The client side of one connection: gate, route, forward, and on a WebSocket 101 hand both sockets to a byte
/// tunnel. Requests on one connection are handled one at a time (`HTTPServerPipelineHandler` holds the next).
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: DispatchShared
    private let codec: [RemovableChannelHandler]
    private var context: ChannelHandlerContext?
    private var peerTrusted = false

    private enum State {
        case idle
        case refusing
        case proxying(Exchange)
        case upgraded
    }
    private var state = State.idle
    private var upstream: UpstreamHandler?
    private var pendingRead = false

    /// - Parameter codec: the HTTP handlers to remove on upgrade, in removal order, decoder last.
    init(shared: DispatchShared, codec: [RemovableChannelHandler]) {
        self.shared = shared
        self.codec = codec
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peerTrusted = shared.config.isTrusted(peer: context.channel.remoteAddress)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        peerTrusted = shared.config.isTrusted(peer: context.channel.remoteAddress)
        context.fireChannelActive()
    }

    // MARK: inbound from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            begin(context: context, head: head)
        case .body(let body):
            if case .proxying = state { upstream?.send(.body(.byteBuffer(body))) }
        case .end(let trailers):
            if case .proxying = state {
                upstream?.send(.end(trailers))
                upstream?.flush()
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    private func begin(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard case .idle = state else { return }
        let decision = Gate.decide(headers: head.headers, peerTrusted: peerTrusted, gateGroup: shared.config.gateGroup) {
            shared.routes.lookup($0)
        }
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
            let upgrade = Gate.isWebSocketUpgrade(head.headers) || head.headers.contains(name: "upgrade")
            let exchange = Exchange(user: user, port: port, head: head, upgrade: upgrade)
            state = .proxying(exchange)
            let outHead = HTTPRequestHead(
                version: .http1_1, method: head.method, uri: head.uri,
                headers: Gate.upstreamHeaders(head.headers, user: user, upgrade: Gate.isWebSocketUpgrade(head.headers)))
            if let up = upstream, up.port == port, up.user == user, up.usable {
                up.send(.head(outHead))
            } else {
                upstream?.closeQuietly()
                let up = UpstreamHandler(client: self, user: user, port: port, eventLoop: context.eventLoop)
                upstream = up
                up.send(.head(outHead))
                up.connect(shared: shared)
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
        let close = ex.closeAfter
        context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
            if close { context.close(promise: nil) }
        }
    }

    func upstreamFlush() { context?.flush() }

    /// The upstream closed or could not be reached.
    func upstreamFailed(_ up: UpstreamHandler, connectError: Error?) {
        guard up === upstream else { return }
        upstream = nil
        guard let context, case .proxying(let ex) = state else { return }
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

    private func finish(_ ex: Exchange) {
        if ex.status != 0 { shared.metrics.countResponse(ex.status) }
        shared.active.release(ex.user)
        shared.metrics.activeUsers.set(Double(shared.active.activeCount))
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        if let up = upstream, !up.writable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func upstreamWritable() {
        if pendingRead, let context {
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
        if case .proxying(let ex) = state {
            ex.status = 0  // the response never completed; not counted
            finish(ex)
        }
        state = .refusing
        upstream?.closeQuietly()
        upstream = nil
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
/// client's next request to the same user.
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

    init(client: ClientHandler, user: String, port: Int, eventLoop: EventLoop) {
        self.client = client
        self.user = user
        self.port = port
        self.eventLoop = eventLoop
    }

    var usable: Bool { !closed && reusable && (connecting || (channel?.isActive ?? false)) }
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
        switch unwrapInboundIn(data) {
        case .head(let head): client?.upstreamHead(head)
        case .body(let body): client?.upstreamBody(body)
        case .end(let trailers): client?.upstreamEnd(trailers)
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
