import Logging
import NIOCore
import NIOHTTP1

extension ChannelPipeline.SynchronousOperations {
    /// Adds the proxy's handlers to an accepted client connection: NIO's request decoder (leftover bytes forwarded,
    /// so a WebSocket's first frames survive the switch), then `ClientHandler`, which writes responses as bytes
    /// (no response encoder).
    func addDispatchClientHandlers(shared: DispatchShared, pool: UpstreamPool?) throws {
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let handler = ClientHandler(shared: shared, decoder: decoder, pool: pool)
        try addHandlers([decoder, handler])
    }
}

extension ClientHandler {
    /// Answers the client's upgrade with the upstream's 101, then replaces the HTTP handlers on both channels with
    /// a byte tunnel (RFC 6455 section 4: after the handshake the connection carries frames, not HTTP).
    func switchToTunnel(context: ChannelHandlerContext, user: String, head: UpstreamResponseHead) {
        guard let up = upstream, let upChannel = up.channel else { return }
        shared.metrics.countResponse(101)
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 32)
        head.write(to: &out, UpstreamResponseHead.Rewrite(minorVersion: 1, connection: .upgrade))
        context.write(wrapOutboundOut(out), promise: nil)
        // Bytes the upstream sent right after its 101 belong to the new protocol.
        if let early = up.takeUnread() { context.write(wrapOutboundOut(early), promise: nil) }
        context.flush()

        let clientChannel = context.channel
        let clientGlue = GlueHandler()
        let upstreamGlue = GlueHandler()
        GlueHandler.pair(clientGlue, upstreamGlue)
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
