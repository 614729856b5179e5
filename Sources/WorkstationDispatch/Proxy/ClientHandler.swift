import Logging
import NIOCore
import NIOHTTP1
import WorkstationCore

/// The client side of one connection: gate, route, forward, and on a WebSocket 101 hand both sockets to a byte
/// tunnel. What happens when is decided by `ClientConnectionStateMachine`; this handler feeds it the channel's
/// events and performs the actions it returns (the gate's checks, writes, the choice of upstream connection).
/// Reading is not paused between ordinary requests (unlike `HTTPServerPipelineHandler`, which costs two
/// `epoll_ctl` calls per request).
///
/// Requests are decoded by NIO's HTTP/1.1 parser (the client side is where identities are checked); responses go
/// back as the upstream's bytes, framed by `ResponseFramer`, with only the head's hop-by-hop fields rewritten, so
/// no response is decoded into strings and encoded again.
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let shared: DispatchShared
    /// The request decoder, removed on upgrade.
    let decoder: RemovableChannelHandler
    private(set) var context: ChannelHandlerContext?
    var machine = ClientConnectionStateMachine()
    /// The upstream connection of the current (or last) exchange.
    var upstream: UpstreamHandler?
    /// Idle upstream connections of this channel's event loop; nil disables pooling.
    let pool: UpstreamPool?

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

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        checkPeer(context.channel)
        context.fireChannelActive()
    }

    /// Decides once per connection whether its peer may send requests at all: in `peer` mode the kernel's
    /// `SO_PEERCRED` uid must be a front-proxy account; in `jwt` mode the address must be in `trusted_proxies`
    /// when that list is set (the token is checked on every request either way).
    private func checkPeer(_ channel: Channel) {
        switch shared.config.identity {
        case .peer:
            guard let uid = shared.peerUID(channel) else {
                machine.peerChecked(.untrusted("peer credentials unavailable (not a unix socket)"))
                return
            }
            machine.peerChecked(
                shared.frontProxyUIDs.contains(uid)
                    ? .trusted : .untrusted("peer uid \(uid) is not a front_proxy_users account")
            )
        case .jwt:
            machine.peerChecked(
                shared.trusted.contains(channel.remoteAddress)
                    ? .trusted : .untrusted("peer address is not in trusted_proxies")
            )
        }
    }

    // MARK: inbound from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.received(unwrapInboundIn(data)), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if machine.requestInFlight { upstream?.flush() }
        context.fireChannelReadComplete()
    }

    private func perform(_ action: ClientConnectionStateMachine.RequestAction, context: ChannelHandlerContext) {
        switch action {
        case .none: break
        case .gate(let head): gate(head, token: nil, context: context)
        case .forwardBody(let body, let chunked): upstream?.sendBody(body, chunked: chunked)
        case .forwardEnd(let trailers, let chunked):
            upstream?.sendEnd(trailers, chunked: chunked)
            upstream?.flush()
        case .refuse(let refusal): refuse(refusal, context: context)
        }
    }

    /// Handles waiting parts once the connection is idle again, up to the next request that must wait.
    func drainQueued(context: ChannelHandlerContext) {
        while let action = machine.nextQueued() { perform(action, context: context) }
        upstream?.flush()
        upstreamWritable()
    }

    /// Checks the request's identity (`Gate.decide`; in `jwt` mode its token first, from the cache or verified off
    /// the loop) and routes it: the head goes to the user's upstream connection, reused, from the pool, or new.
    private func gate(_ head: HTTPRequestHead, token: TokenIdentity?, context: ChannelHandlerContext) {
        let decision: GateDecision
        if let verifier = shared.verifier {
            guard let identity = token else {
                // Every request carries its own token; one seen before is answered from the cache at once.
                let fields = IdentityFields(head.headers)
                guard fields.tokenCount == 1, let value = fields.token, !value.isEmpty else {
                    let reason =
                        fields.tokenCount == 0 ? "no \(Gate.jwtHeader) header" : "\(Gate.jwtHeader) repeated or empty"
                    refuse(head, .forbidden, reason: reason, context: context)
                    return
                }
                if let hit = verifier.cached(value) {
                    gate(head, token: hit, context: context)
                } else {
                    machine.verificationStarted(head)
                    verify(value, verifier: verifier, context: context)
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
                checked: &machine.checkedIdentity
            ) { shared.routes.lookup($0) }
        }
        switch decision {
        case .refuse(let status, let reason):
            refuse(head, .init(statusCode: status), reason: reason, context: context)
        case .route(let user, let osUser, let port):
            guard let activeCount = shared.active.acquireCounting(user) else {
                refuse(head, .tooManyRequests, reason: "active user ceiling reached", user: user, context: context)
                return
            }
            shared.metrics.activeUsers.set(Double(activeCount))
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
            machine.routed(exchange)
            send(
                outHead,
                isHead: head.method == .HEAD,
                dechunk: exchange.dechunk,
                to: (user, osUser, port),
                eventLoop: context.eventLoop
            )
        }
    }

    /// Sends a routed request's head on the current upstream connection when it goes to the same user and port
    /// and can take it, else on one from the pool, else on a new one.
    private func send(
        _ head: ByteBuffer,
        isHead: Bool,
        dechunk: Bool,
        to route: (user: String, osUser: String, port: Int),
        eventLoop: EventLoop
    ) {
        let (user, osUser, port) = route
        if let up = upstream, up.port == port, up.user == user, up.usable {
            up.sendHead(head, isHead: isHead, dechunk: dechunk)
            return
        }
        if let old = upstream {
            upstream = nil
            release(old)
        }
        if let up = pool?.take(user: user, port: port) {
            up.attach(self)
            upstream = up
            up.sendHead(head, isHead: isHead, dechunk: dechunk)
        } else {
            let up = UpstreamHandler(client: self, user: user, osUser: osUser, port: port, eventLoop: eventLoop)
            upstream = up
            up.sendHead(head, isHead: isHead, dechunk: dechunk)
            up.connect(shared: shared)
        }
    }

    /// Verifies a token not seen before off the event loop (jwt-kit's key collection is an actor); the request's
    /// parts wait and reading pauses meanwhile. Then the request is gated as usual, or refused.
    private func verify(_ token: String, verifier: TokenVerifier, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await verifier.verify(token) }.assumeIsolated().whenComplete { result in
            let me = bound.value
            guard let context = me.context, let head = me.machine.verificationEnded() else { return }
            switch result {
            case .success(.success(let identity)):
                me.gate(head, token: identity, context: context)
            case .success(.failure(let refusal)):
                me.refuse(head, .forbidden, reason: refusal.reason, context: context)
            case .failure(let error):
                me.refuse(head, .forbidden, reason: "token check failed: \(error)", context: context)
            }
            me.drainQueued(context: context)
        }
    }

    private func refuse(
        _ head: HTTPRequestHead,
        _ status: HTTPResponseStatus,
        reason: String,
        user: String? = nil,
        context: ChannelHandlerContext
    ) {
        let refusal = ClientConnectionStateMachine.Refusal(
            status: status,
            version: head.version,
            method: head.method,
            reason: reason,
            user: user
        )
        refuse(machine.refused(refusal), context: context)
    }

    /// Answers with a short page (`RefusalPage`) and closes the connection; logs the refusal when it has a reason.
    func refuse(_ refusal: ClientConnectionStateMachine.Refusal, context: ChannelHandlerContext) {
        if let reason = refusal.reason {
            var metadata: Logger.Metadata = ["status": "\(refusal.status.code)", "reason": .string(reason)]
            if let user = refusal.user { metadata["user"] = .string(user) }
            shared.logger.notice("refused", metadata: metadata)
        }
        shared.metrics.countResponse(Int(refusal.status.code))
        var out = context.channel.allocator.buffer(capacity: 512)
        RefusalPage.write(refusal.status, version: refusal.version, method: refusal.method, to: &out)
        context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Hands an upstream connection no longer needed by this client to the pool (which keeps it only when it is
    /// idle and reusable), or closes it.
    func release(_ up: UpstreamHandler) {
        if let pool { pool.put(up) } else { up.closeQuietly() }
    }

    /// Counts the exchange's status (unless 0) and returns its user's active slot.
    func finish(_ done: ClientConnectionStateMachine.Finished) {
        if done.status != 0 { shared.metrics.countResponse(done.status) }
        shared.metrics.activeUsers.set(Double(shared.active.releaseCounting(done.user)))
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        if machine.readRequested(upstreamWritable: upstream?.writable ?? true) { context.read() }
    }

    func upstreamWritable() {
        guard let context else { return }
        if machine.upstreamBecameWritable() { context.read() }
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
        switch machine.channelInactive() {
        case .abandon(let done):
            finish(done)
            up?.closeQuietly()
        case .releaseUpstream:
            if let up { release(up) }  // between requests: the upstream connection is idle
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch machine.errorCaught(isParserError: error is HTTPParserError) {
        case .refuse(let refusal): refuse(refusal, context: context)
        case .close: context.close(promise: nil)
        }
    }
}

/// The short pages the dispatcher answers itself with, each closing the connection.
enum RefusalPage {
    /// Writes the whole response (status line, fields, and the page unless `method` is HEAD) into `out`.
    static func write(_ status: HTTPResponseStatus, version: HTTPVersion, method: HTTPMethod, to out: inout ByteBuffer)
    {
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
        out.writeString("HTTP/1.\(version.minor == 0 ? 0 : 1) \(status.code) \(status.reasonPhrase)\r\n")
        out.writeString(
            "\(extra)Content-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        )
        if method != .HEAD { out.writeString(body) }
    }
}
