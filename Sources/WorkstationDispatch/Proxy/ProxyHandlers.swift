import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
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
    /// `peer` mode: the uids whose connections are believed (the front proxy's accounts).
    let frontProxyUIDs: Set<uid_t>
    /// Set when `dispatch.jwt` is configured: every request must carry a valid `X-authentik-jwt`.
    let verifier: TokenVerifier?
    /// os_user -> uid, for the check of each upstream connection's acceptor.
    let accounts: AccountIDs
    /// The TLS client for workspace routes with a `tls_name` (`dispatch.workspace_tls`).
    let workspaceTLS: WorkspaceTLSClient?

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
        accounts: AccountIDs = AccountIDs()
    ) {
        self.frontProxyUIDs = frontProxyUIDs
        self.verifier = verifier
        self.accounts = accounts
        self.workspaceTLS = config.workspaceTLS.map { WorkspaceTLSClient(settings: $0) }
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
    /// The request asked to switch protocols (NIO's decoder then stops reading requests on this connection).
    let upgrade: Bool
    /// The request is a WebSocket handshake, the only switch passed upstream: a 101 is accepted for it alone.
    let webSocket: Bool
    /// The request body goes upstream in chunked coding (the client's request had `Transfer-Encoding`).
    let chunkedRequest: Bool
    let started: NIODeadline
    var status = 0
    var responseStarted = false
    var closeAfter = false
    /// The head as sent upstream, kept for one retry on a fresh connection.
    let upstreamHead: ByteBuffer
    /// Whether any body part or the request's end was forwarded.
    var sentBody = false
    var requestEnded = false
    var endTrailers: HTTPHeaders?
    var retried = false

    init(user: String, port: Int, head: HTTPRequestHead, upstreamHead: ByteBuffer, upgrade: Bool, webSocket: Bool) {
        self.user = user
        self.port = port
        self.requestVersion = head.version
        self.method = head.method
        self.keepAlive = head.isKeepAlive
        self.upgrade = upgrade
        self.webSocket = webSocket
        self.chunkedRequest = head.headers.contains(name: "transfer-encoding")
        self.upstreamHead = upstreamHead
        self.started = .now()
    }

    /// An HTTP/1.0 client cannot read chunked coding: the body is handed on as its data, then the connection closes.
    var dechunk: Bool { requestVersion.major == 1 && requestVersion.minor == 0 }

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
///
/// Requests are decoded by NIO's HTTP/1.1 parser (the client side is where identities are checked); responses go
/// back as the upstream's bytes, framed by `ResponseFramer`, with only the head's hop-by-hop fields rewritten, so
/// no response is decoded into strings and encoded again.
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let shared: DispatchShared
    private let decoder: RemovableChannelHandler
    private var context: ChannelHandlerContext?
    private var peerTrusted = false
    /// Identity headers already checked on this connection (`Gate.decide`).
    private var checked: CheckedIdentity?

    private enum State {
        case idle
        /// A request's token is being verified (a cache miss); its parts wait in `queued`.
        case verifying
        case refusing
        case proxying(Exchange)
        case upgraded
    }
    /// Why the peer is not believed (for the log), when `peerTrusted` is false.
    private var peerProblem = "peer not checked"
    private var state = State.idle
    private var upstream: UpstreamHandler?
    private var pendingRead = false
    /// Parts of pipelined requests that arrived while an earlier response was still going out, in order.
    private var queued: [HTTPServerRequestPart] = []
    /// Idle upstream connections of this channel's event loop; nil disables pooling.
    private let pool: UpstreamPool?

    /// - Parameters:
    ///   - decoder: the request decoder, removed on upgrade.
    ///   - pool: the upstream pool of the event loop this channel runs on.
    init(shared: DispatchShared, decoder: RemovableChannelHandler, pool: UpstreamPool?) {
        self.shared = shared
        self.decoder = decoder
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { checkPeer(context.channel) }
    }

    /// Decides once per connection whether its peer may send requests at all: in `peer` mode the kernel's
    /// `SO_PEERCRED` uid must be a front-proxy account; in `jwt` mode the address must be in `trusted_proxies`
    /// when that list is set (the token is checked on every request either way).
    private func checkPeer(_ channel: Channel) {
        switch shared.config.identity {
        case .peer:
            guard let uid = SocketOwners.peerUID(of: channel) else {
                peerTrusted = false
                peerProblem = "peer credentials unavailable (not a unix socket)"
                return
            }
            peerTrusted = shared.frontProxyUIDs.contains(uid)
            peerProblem = "peer uid \(uid) is not a front_proxy_users account"
        case .jwt:
            peerTrusted = shared.trusted.contains(channel.remoteAddress)
            peerProblem = "peer address is not in trusted_proxies"
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        checkPeer(context.channel)
        context.fireChannelActive()
    }

    // MARK: inbound from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !queued.isEmpty || isVerifying {
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
            case .proxying, .verifying: queued.append(part)  // pipelined: waits for the current response
            case .refusing, .upgraded: break
            }
        case .body(let body):
            if case .proxying(let ex) = state {
                ex.sentBody = true
                upstream?.sendBody(body, chunked: ex.chunkedRequest)
            }
        case .end(let trailers):
            if case .proxying(let ex) = state {
                ex.requestEnded = true
                ex.endTrailers = trailers
                upstream?.sendEnd(trailers, chunked: ex.chunkedRequest)
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

    private var isVerifying: Bool {
        if case .verifying = state { return true }
        return false
    }

    private func begin(context: ChannelHandlerContext, head: HTTPRequestHead, token: TokenIdentity? = nil) {
        guard case .idle = state else { return }
        // CONNECT asks for a tunnel to an arbitrary address, which no person's instance serves; NIO's decoder also
        // stops reading requests after one.
        if head.method == .CONNECT {
            shared.logger.notice("refused", metadata: ["status": "405", "reason": "CONNECT"])
            refuse(context: context, version: head.version, method: head.method, status: .methodNotAllowed)
            return
        }
        guard peerTrusted else {
            shared.logger.notice("refused", metadata: ["status": "403", "reason": .string(peerProblem)])
            refuse(context: context, version: head.version, method: head.method, status: .forbidden)
            return
        }
        let decision: GateDecision
        if let verifier = shared.verifier {
            guard let identity = token else {
                // Every request carries its own token; one seen before is answered from the cache at once.
                let values = head.headers[Gate.jwtHeader]
                guard values.count == 1, let value = values.first, !value.isEmpty else {
                    let reason = values.isEmpty ? "no \(Gate.jwtHeader) header" : "\(Gate.jwtHeader) repeated or empty"
                    shared.logger.notice("refused", metadata: ["status": "403", "reason": .string(reason)])
                    refuse(context: context, version: head.version, method: head.method, status: .forbidden)
                    return
                }
                if let hit = verifier.cached(value) {
                    begin(context: context, head: head, token: hit)
                } else {
                    verify(value, head: head, verifier: verifier, context: context)
                }
                return
            }
            decision = Gate.decide(headers: head.headers, token: identity, gateGroup: shared.config.gateGroup) {
                shared.routes.lookup($0)
            }
        } else {
            decision = Gate.decide(
                headers: head.headers,
                peerTrusted: true,
                gateGroup: shared.config.gateGroup,
                checked: &checked
            ) { shared.routes.lookup($0) }
        }
        switch decision {
        case .refuse(let status, let reason):
            shared.logger.notice("refused", metadata: ["status": "\(status)", "reason": .string(reason)])
            refuse(context: context, version: head.version, method: head.method, status: .init(statusCode: status))
        case .route(let user, let osUser, let port, let workspace):
            guard shared.active.acquire(user) else {
                shared.logger.notice(
                    "refused",
                    metadata: ["status": "429", "user": .string(user), "reason": "active user ceiling reached"]
                )
                refuse(context: context, version: head.version, method: head.method, status: .tooManyRequests)
                return
            }
            shared.metrics.activeUsers.set(Double(shared.active.activeCount))
            let webSocket = Gate.isWebSocketUpgrade(head.headers)
            let upgrade = webSocket || head.headers.contains(name: "upgrade")
            var outHead = context.channel.allocator.buffer(capacity: 512)
            Gate.writeUpstreamHead(head, user: user, upgrade: webSocket, into: &outHead)
            let exchange = Exchange(
                user: user,
                port: port,
                head: head,
                upstreamHead: outHead,
                upgrade: upgrade,
                webSocket: webSocket
            )
            state = .proxying(exchange)
            if let up = upstream, up.port == port, up.user == user, up.workspace == workspace, up.usable {
                up.sendHead(outHead, exchange: exchange)
            } else {
                if let old = upstream {
                    upstream = nil
                    release(old)
                }
                // A pooled connection goes to the same target only (a person moved between placements keeps none).
                let pooled = pool?.take(user: user, port: port)
                if let pooled, pooled.workspace != workspace { pooled.closeQuietly() }
                if let up = pooled, up.workspace == workspace {
                    up.attach(self)
                    upstream = up
                    up.sendHead(outHead, exchange: exchange)
                } else {
                    let up = UpstreamHandler(
                        client: self,
                        user: user,
                        osUser: osUser,
                        port: port,
                        workspace: workspace,
                        eventLoop: context.eventLoop
                    )
                    upstream = up
                    up.sendHead(outHead, exchange: exchange)
                    up.connect(shared: shared)
                }
            }
        }
    }

    /// Verifies a token not seen before off the event loop (jwt-kit's key collection is an actor); the request's
    /// parts wait in `queued` and reading pauses meanwhile. Then the request is gated as usual, or refused.
    private func verify(_ token: String, head: HTTPRequestHead, verifier: TokenVerifier, context: ChannelHandlerContext)
    {
        state = .verifying
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await verifier.verify(token) }.assumeIsolated().whenComplete { result in
            let me = bound.value
            guard case .verifying = me.state, let context = me.context else { return }
            me.state = .idle
            switch result {
            case .success(.success(let identity)):
                me.begin(context: context, head: head, token: identity)
            case .success(.failure(let refusal)):
                me.shared.logger.notice("refused", metadata: ["status": "403", "reason": .string(refusal.reason)])
                me.refuse(context: context, version: head.version, method: head.method, status: .forbidden)
            case .failure(let error):
                me.shared.logger.notice(
                    "refused",
                    metadata: ["status": "403", "reason": .string("token check failed: \(error)")]
                )
                me.refuse(context: context, version: head.version, method: head.method, status: .forbidden)
            }
            me.drainQueued(context: context)
        }
    }

    /// Answers `status` with a short page and closes the connection.
    private func refuse(
        context: ChannelHandlerContext,
        version: HTTPVersion,
        method: HTTPMethod,
        status: HTTPResponseStatus
    ) {
        state = .refusing
        let body: String
        let type: String
        var extra = ""
        switch status {
        case .tooManyRequests:
            body =
                "<!doctype html><title>workstation is full</title><h1>All workstation seats are in use</h1><p>Too many people are working right now. Try again in a few minutes.</p>\n"
            type = "text/html; charset=utf-8"
            extra = "Retry-After: 60\r\n"
        case .badGateway:
            body =
                "<!doctype html><title>workstation unavailable</title><h1>Your workstation is not answering</h1><p>It may be starting; try again shortly.</p>\n"
            type = "text/html; charset=utf-8"
        case .badRequest:
            body = "bad request\n"
            type = "text/plain; charset=utf-8"
        case .methodNotAllowed:
            body = "CONNECT is not served here\n"
            type = "text/plain; charset=utf-8"
            extra = "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
        default:
            body =
                "<!doctype html><title>forbidden</title><h1>Forbidden</h1><p>You are not allowed to use this workstation. Ask an administrator to add you to the roster.</p>\n"
            type = "text/html; charset=utf-8"
        }
        shared.metrics.countResponse(Int(status.code))
        var out = context.channel.allocator.buffer(capacity: 512)
        out.writeString("HTTP/1.\(version.minor == 0 ? 0 : 1) \(status.code) \(status.reasonPhrase)\r\n")
        out.writeString(
            "\(extra)Content-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        )
        if method != .HEAD { out.writeString(body) }
        context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    // MARK: from the upstream

    /// A 1xx response before the final one: passed on to an HTTP/1.1 client (an HTTP/1.0 client does not know them).
    /// An interim (1xx) response other than a WebSocket's 101 is dropped, never passed on. Front proxies that do not
    /// support 1xx from an upstream (nginx 1.22 takes a `100 Continue` as the final response) would otherwise
    /// disagree with the dispatcher about where a response ends on a kept-alive connection, which is how one
    /// person's response could be queued behind another's request. The front proxy answers `Expect: 100-continue`
    /// itself; RFC 9110 section 15.2 lets an intermediary drop 1xx it does not need to forward (a client that sent
    /// `Expect` then sends its body after its own timeout).
    func upstreamInterim(_ head: UpstreamResponseHead) {}

    func upstreamHead(_ head: UpstreamResponseHead) {
        guard let context, case .proxying(let ex) = state else { return }
        // A switch nobody asked for (only WebSocket handshakes are passed upstream): the connection would carry
        // bytes we cannot frame. Checked before the response counts as started, so the client gets a 502.
        if head.status == 101 && !ex.webSocket {
            upstreamBroken(
                UpstreamFramingError(description: "the upstream switched protocols without a WebSocket request")
            )
            return
        }
        ex.responseStarted = true
        ex.status = head.status
        shared.metrics.upstreamLatency.recordNanoseconds((NIODeadline.now() - ex.started).nanoseconds)
        if head.status == 101 {
            switchToTunnel(context: context, exchange: ex, head: head)
            return
        }
        if !head.keepAlive { upstream?.reusable = false }
        let dechunk = ex.dechunk && head.framing == .chunked
        // An upgrade request the upstream declined leaves the request decoder stopped (it expects the switch):
        // finish this response and close. A body that ends with the upstream's close, or an HTTP/1.0 client's
        // de-chunked body, is delimited by closing too.
        ex.closeAfter = !ex.keepAlive || ex.upgrade || head.framing == .untilClose || dechunk
        var extra: [String] = []
        if ex.method == .HEAD && !head.has("content-length") && !head.has("transfer-encoding") {
            extra.append("Content-Length: 0")
        }
        if ex.closeAfter {
            extra.append("Connection: close")
        } else if ex.dechunk {
            extra.append("Connection: keep-alive")
        }
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 64)
        head.write(
            to: &out,
            minorVersion: ex.dechunk ? 0 : 1,
            keepUpgrade: false,
            dropTransferEncoding: dechunk,
            extra: extra
        )
        context.write(wrapOutboundOut(out), promise: nil)
    }

    func upstreamBody(_ body: ByteBuffer) {
        guard let context, case .proxying = state else { return }
        context.write(wrapOutboundOut(body), promise: nil)
    }

    func upstreamEnd() {
        guard let context, case .proxying(let ex) = state else { return }
        // A connection that closes after this response takes no further request meanwhile.
        state = ex.closeAfter ? .refusing : .idle
        finish(ex)
        // A response that ended before the request did leaves a partial request on the upstream connection.
        if !ex.requestEnded || ex.upgrade { upstream?.reusable = false }
        if ex.closeAfter, let up = upstream {
            upstream = nil
            release(up)
        }
        if ex.closeAfter {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated()
                .whenComplete { _ in
                    context.close(promise: nil)
                }
        } else {
            context.flush()
            if !queued.isEmpty { drainQueued(context: context) }
        }
    }

    func upstreamFlush() { context?.flush() }

    /// The upstream's response did not frame: before the head, answer 502; after it, cut the client connection
    /// (the client must not take what follows for the end of the response).
    func upstreamBroken(_ error: UpstreamFramingError) {
        guard let context, case .proxying(let ex) = state else { return }
        let up = upstream
        upstream = nil
        up?.closeQuietly()
        shared.logger.warning(
            "upstream response refused",
            metadata: [
                "user": .string(ex.user), "port": "\(ex.port)", "error": .string(error.description),
            ]
        )
        if !ex.responseStarted {
            ex.status = 502
            finish(ex)
            refuse(context: context, version: ex.requestVersion, method: ex.method, status: .badGateway)
        } else {
            // What was forwarded goes out; the client sees the response cut short, never completed by us.
            finish(ex)
            state = .refusing
            context.flush()
            context.close(promise: nil)
        }
    }

    /// Logs a workspace whose certificate was refused (the client then gets 502 from `upstreamFailed`).
    func logUpstreamRefused(user: String, host: String, reason: String) {
        shared.logger.error(
            "upstream refused",
            metadata: ["user": .string(user), "host": .string(host), "reason": .string(reason)]
        )
    }

    /// The upstream closed or could not be reached.
    func upstreamFailed(_ up: UpstreamHandler, connectError: Error?) {
        guard up === upstream else { return }
        upstream = nil
        guard let context, case .proxying(let ex) = state else { return }
        if connectError == nil, up.requestsSent > 1, ex.retryable {
            // A kept-alive connection the upstream closed as this request went out (its idle timeout): send the
            // request once more on a new connection, as RFC 9112 section 9.3.1 allows for idempotent requests.
            ex.retried = true
            let fresh = UpstreamHandler(
                client: self,
                user: ex.user,
                osUser: up.osUser,
                port: ex.port,
                workspace: up.workspace,
                eventLoop: context.eventLoop
            )
            upstream = fresh
            fresh.sendHead(ex.upstreamHead, exchange: ex)
            if ex.requestEnded { fresh.sendEnd(ex.endTrailers, chunked: ex.chunkedRequest) }
            fresh.connect(shared: shared)
            return
        }
        if !ex.responseStarted {
            shared.logger.warning(
                "upstream unavailable",
                metadata: [
                    "user": .string(ex.user), "port": "\(ex.port)",
                    "error": .string(connectError.map { "\($0)" } ?? "closed before responding"),
                ]
            )
            finish(ex)
            refuse(context: context, version: ex.requestVersion, method: ex.method, status: .badGateway)
        } else {
            finish(ex)
            state = .refusing
            context.close(promise: nil)
        }
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
        if !queued.isEmpty || isVerifying {
            pendingRead = true  // no more reading while pipelined requests or a token check wait
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
            refuse(context: context, version: .http1_1, method: .GET, status: .badRequest)
            return
        }
        context.close(promise: nil)
    }

    // MARK: WebSocket

    /// Answers the client's upgrade with the upstream's 101, then replaces the HTTP handlers on both channels with
    /// a byte tunnel (RFC 6455 section 4: after the handshake the connection carries frames, not HTTP).
    private func switchToTunnel(context: ChannelHandlerContext, exchange ex: Exchange, head: UpstreamResponseHead) {
        guard let up = upstream, let upChannel = up.channel else { return }
        guard queued.isEmpty else {
            // A request pipelined behind a handshake would be lost in the tunnel: refuse the switch.
            upstreamBroken(UpstreamFramingError(description: "a request was pipelined behind a WebSocket handshake"))
            return
        }
        state = .upgraded
        shared.metrics.countResponse(101)
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 32)
        head.write(
            to: &out,
            minorVersion: 1,
            keepUpgrade: true,
            dropTransferEncoding: false,
            extra: ["Connection: Upgrade"]
        )
        context.write(wrapOutboundOut(out), promise: nil)
        // Bytes the upstream sent right after its 101 belong to the new protocol.
        if let early = up.takeUnread() { context.write(wrapOutboundOut(early), promise: nil) }
        context.flush()

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
            // Client side: this handler, then the request decoder, so bytes it held reach the glue.
            clientOps.removeHandler(context: context, promise: nil)
            let clientDecoderGone = clientChannel.eventLoop.makePromise(of: Void.self)
            clientOps.removeHandler(decoder, promise: clientDecoderGone)
            let upstreamGone = clientChannel.eventLoop.makePromise(of: Void.self)
            up.removeFromPipeline(upstreamGone)
            clientDecoderGone.futureResult.and(upstreamGone.futureResult).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    clientGlue.release()
                    upstreamGlue.release()
                    // A read this handler held back (the upstream was not writable) is the glue's to make now.
                    clientChannel.read()
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
///
/// Requests go out as bytes (`Gate.writeUpstreamHead`; bodies re-chunked when the client's request was chunked);
/// responses are framed by `ResponseFramer` and handed to the client as they came.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let user: String
    /// The account that must own the socket accepting this connection.
    let osUser: String
    let port: Int
    /// Set for a kubernetes-placed person: the connection goes to this Service (TLS when it has a name) instead of
    /// `127.0.0.1:port`, and the certificate check replaces the socket-owner check.
    let workspace: WorkspaceTarget?
    /// Why TLS to the workspace failed (certificate refused), reported as the connection's failure.
    private var tlsFailure: Error?
    private let eventLoop: EventLoop
    private var client: ClientHandler?
    private(set) var channel: Channel?
    private var context: ChannelHandlerContext?
    private var pending: [ByteBuffer] = []
    private var connecting = true
    private var closed = false
    /// False once the upstream said `Connection: close`; the next request opens a new connection.
    var reusable = true
    private var pendingRead = false
    private var framer = ResponseFramer()
    /// Request heads sent on this connection (more than one: a kept-alive connection).
    private(set) var requestsSent = 0
    /// Set while the connection waits in a pool (no client); the pool that holds it.
    private(set) var idleSince: NIODeadline?
    private weak var pool: UpstreamPool?

    init(
        client: ClientHandler,
        user: String,
        osUser: String,
        port: Int,
        workspace: WorkspaceTarget? = nil,
        eventLoop: EventLoop
    ) {
        self.client = client
        self.user = user
        self.osUser = osUser
        self.port = port
        self.workspace = workspace
        self.eventLoop = eventLoop
    }

    var usable: Bool { !closed && reusable && (connecting || (channel?.isActive ?? false)) }
    /// Connected, reusable and between exchanges' ends: may wait in a pool.
    var idleReusable: Bool {
        !closed && reusable && !connecting && context != nil && (channel?.isActive ?? false) && !framer.awaitingResponse
            && !framer.hasUnread
    }

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
        // A workspace with a certificate name: TLS first, which sends no byte of the request before the
        // workspace's certificate chains to workspace_tls.ca_file and names it (WorkspaceUpstream.swift).
        var tls: NIOSSLClientHandler?
        if let name = workspace?.tlsName {
            do {
                guard let client = shared.workspaceTLS else {
                    throw WorkspaceTLSError(
                        description:
                            "\(name) needs TLS, but dispatch.workspace_tls is not configured; set ca_file, cert_file and key_file"
                    )
                }
                tls = try client.handler(serverName: name)
            } catch {
                shared.logger.error(
                    "upstream refused",
                    metadata: ["user": .string(user), "host": .string(workspace?.host ?? ""), "reason": "\(error)"]
                )
                connecting = false
                closed = true
                pending.removeAll()
                let c = client
                client = nil
                eventLoop.assumeIsolated().execute { c?.upstreamFailed(self, connectError: error) }
                return
            }
        }
        let sslHandler = tls.map { NIOLoopBound($0, eventLoop: eventLoop) }
        ClientBootstrap(group: eventLoop)
            // TCP_NODELAY is a TCP-level option (tcp(7)); as a socket-level option it would be SO_DEBUG.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslHandler { try channel.pipeline.syncOperations.addHandler(sslHandler.value) }
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(host: workspace?.host ?? "127.0.0.1", port: port)
            .assumeIsolated()
            .whenComplete { result in
                let me = bound.value
                switch result {
                case .success(let channel):
                    me.channel = channel
                    if me.closed {
                        me.connecting = false
                        channel.close(promise: nil)
                        return
                    }
                    // Nothing is sent to, or read from, a listener until its owner is known to be the person.
                    me.verifyAcceptor(channel: channel, shared: shared, attempt: 0)
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

    /// Checks that the socket that accepted this connection belongs to `osUser` (`SocketOwners.acceptorUID`), then
    /// sends what waited. A connection still being set up by the kernel is looked for again a few times, 1 ms apart.
    /// Another owner (someone took the port while the person's instance was down) closes the connection before a
    /// byte went out: the client gets 502, and the log names the port, the owner found and the account expected.
    private func verifyAcceptor(channel: Channel, shared: DispatchShared, attempt: Int) {
        guard !closed else {
            connecting = false
            channel.close(promise: nil)
            return
        }
        var problem: String?
        // A workspace has no account on this host: its certificate is the check (above), or with tls none,
        // the NetworkPolicy alone (docs/scale-out.md).
        if shared.config.verifyUpstreamOwner, workspace == nil {
            if let expected = shared.accounts.uid(of: osUser) {
                let owner = channel.localAddress?.port.flatMap {
                    SocketOwners.acceptorUID(serverPort: port, clientPort: $0, procNet: shared.config.procNet)
                }
                if owner == nil, attempt < 20 {
                    let bound = NIOLoopBound(self, eventLoop: eventLoop)
                    eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
                        bound.value.verifyAcceptor(channel: channel, shared: shared, attempt: attempt + 1)
                    }
                    return
                }
                if owner != expected {
                    problem =
                        "the listener on 127.0.0.1:\(port) belongs to "
                        + (owner.map { "uid \($0)" } ?? "no account found")
                        + ", not to \(osUser) (uid \(expected))"
                }
            } else {
                problem = "no account named \(osUser) for the listener on 127.0.0.1:\(port)"
            }
        }
        connecting = false
        if let problem {
            shared.logger.error(
                "upstream refused",
                metadata: ["user": .string(user), "port": "\(port)", "reason": .string(problem)]
            )
            closed = true
            reusable = false
            pending.removeAll()
            channel.close(promise: nil)
            let c = client
            client = nil
            c?.upstreamFailed(self, connectError: UpstreamOwnerError(description: problem))
            return
        }
        for part in pending { channel.write(wrapOutboundOut(part), promise: nil) }
        pending.removeAll()
        channel.flush()
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
        client?.upstreamWritable()
    }

    private func write(_ bytes: ByteBuffer) {
        if connecting {
            pending.append(bytes)
        } else if let context {
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
    }

    /// Sends a request head (and sets up the framing of its response).
    fileprivate func sendHead(_ head: ByteBuffer, exchange: Exchange) {
        requestsSent += 1
        framer.expectResponse(isHead: exchange.method == .HEAD, dechunk: exchange.dechunk)
        write(head)
    }

    /// Sends a piece of the request body; in chunked coding when `chunked` (RFC 9112 section 7.1).
    func sendBody(_ body: ByteBuffer, chunked: Bool) {
        guard chunked else { return write(body) }
        guard body.readableBytes > 0 else { return }  // a zero-size chunk would end the body
        var size = ByteBufferAllocator().buffer(capacity: 18)
        size.writeString(String(body.readableBytes, radix: 16))
        size.writeStaticString("\r\n")
        write(size)
        write(body)
        write(ByteBuffer(staticString: "\r\n"))
    }

    /// Ends the request body: the last chunk and the trailers when chunked, nothing otherwise.
    func sendEnd(_ trailers: HTTPHeaders?, chunked: Bool) {
        guard chunked else { return }
        var end = ByteBufferAllocator().buffer(capacity: 64)
        end.writeStaticString("0\r\n")
        for (name, value) in trailers ?? [:] {
            end.writeString(name)
            end.writeStaticString(": ")
            end.writeString(value)
            end.writeStaticString("\r\n")
        }
        end.writeStaticString("\r\n")
        write(end)
    }

    func flush() {
        if !connecting { context?.flush() }
    }

    func closeQuietly() {
        closed = true
        client = nil
        channel?.close(promise: nil)
    }

    /// Bytes after a 101 (the upgraded protocol's).
    func takeUnread() -> ByteBuffer? { framer.takeUnread() }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client else {
            // An idle upstream has nothing to say; anything it sends makes the connection unusable.
            closeQuietly()
            return
        }
        framer.feed(unwrapInboundIn(data))
        do {
            // One event at a time: a handler called here may hand this connection to the pool or switch it.
            while let event = try framer.next() {
                switch event {
                case .interim(let head): client.upstreamInterim(head)
                case .head(let head): client.upstreamHead(head)
                case .body(let body): client.upstreamBody(body)
                case .end:
                    // Bytes after the end answer no request: this connection is closed, never lent again.
                    let unsolicited = framer.hasUnread
                    if unsolicited { reusable = false }
                    client.upstreamEnd()
                    if unsolicited {
                        framer.discard()
                        closeQuietly()
                    }
                }
                if self.client !== client { break }  // released, switched or closed by that event
            }
        } catch {
            // Whatever the client's state, nothing more is read from an upstream that does not frame.
            reusable = false
            framer.discard()
            closeQuietly()
            client.upstreamBroken(error as? UpstreamFramingError ?? UpstreamFramingError(description: "\(error)"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        client?.upstreamFlush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        let c = client
        // A body delimited by the close ends here.
        if let c, (try? framer.upstreamClosed()) == true { c.upstreamEnd() }
        client = nil
        pool?.remove(self)
        pool = nil
        c?.upstreamFailed(self, connectError: tlsFailure)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let w = workspace, w.tlsName != nil,
            error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError,
            tlsFailure == nil
        {
            // A refused certificate (another name, another CA) or a failed handshake: 502, never retried.
            tlsFailure = error
            client?.logUpstreamRefused(user: user, host: w.host, reason: "TLS with \(w.tlsName ?? ""): \(error)")
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if connecting || (client.map { !$0.writable } ?? false) {
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

    /// Leaves the glue handler in charge of the connection (after a 101).
    func removeFromPipeline(_ removed: EventLoopPromise<Void>) {
        guard let context, let channel else {
            removed.fail(ChannelError.ioOnClosedChannel)
            return
        }
        client = nil
        channel.pipeline.syncOperations.removeHandler(context: context, promise: removed)
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

/// The socket that accepted an upstream connection does not belong to the routed person.
struct UpstreamOwnerError: Error, CustomStringConvertible {
    var description: String
}
