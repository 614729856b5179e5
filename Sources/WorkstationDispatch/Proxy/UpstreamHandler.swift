import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

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
        let initialize: @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(bound.value)
            }
        }
        let connection: EventLoopFuture<Channel>
        if let workspace {
            var tls: NIOSSLClientHandler?
            if let name = workspace.tlsName {
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
                        metadata: ["user": .string(user), "host": .string(workspace.host), "reason": "\(error)"]
                    )
                    self.connecting = false
                    closed = true
                    pending.removeAll()
                    let c = client
                    client = nil
                    eventLoop.assumeIsolated().execute { c?.upstreamFailed(self, connectError: error) }
                    return
                }
            }
            connection = DispatchShared.connectToWorkspace(
                eventLoop: eventLoop,
                host: workspace.host,
                port: port,
                tls: tls,
                initialize: initialize
            )
        } else {
            connection = shared.connectUpstream(eventLoop, port, initialize)
        }
        connection
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
            let check = SocketOwners.checkAcceptor(
                osUser: osUser,
                port: port,
                clientPort: channel.localAddress?.port,
                attempt: attempt,
                accounts: shared.accounts,
                procNet: shared.config.procNet
            )
            switch check {
            case .accepted: break
            case .notYetListed:
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
                    bound.value.verifyAcceptor(channel: channel, shared: shared, attempt: attempt + 1)
                }
                return
            case .refused(let reason): problem = reason
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

    /// Sends a request head (and sets up the framing of its response: none for HEAD, de-chunked with `dechunk`).
    func sendHead(_ head: ByteBuffer, isHead: Bool, dechunk: Bool) {
        requestsSent += 1
        framer.expectResponse(isHead: isHead, dechunk: dechunk)
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
