import Logging
import NIOCore
import NIOHTTP1

/// What the upstream connection reports to its client: the response's parts as `ResponseFramer` frames them, its
/// failures, and backpressure. Each is fed to the state machine; the action it returns is performed here.
extension ClientHandler {
    /// A 1xx response before the final one: passed on to an HTTP/1.1 client (an HTTP/1.0 client does not know them).
    /// An interim (1xx) response other than a WebSocket's 101 is dropped, never passed on. Front proxies that do not
    /// support 1xx from an upstream (nginx 1.22 takes a `100 Continue` as the final response) would otherwise
    /// disagree with the dispatcher about where a response ends on a kept-alive connection, which is how one
    /// person's response could be queued behind another's request. The front proxy answers `Expect: 100-continue`
    /// itself; RFC 9110 section 15.2 lets an intermediary drop 1xx it does not need to forward (a client that sent
    /// `Expect` then sends its body after its own timeout).
    func upstreamInterim(_ head: UpstreamResponseHead) {}

    func upstreamHead(_ head: UpstreamResponseHead) {
        guard let context else { return }
        switch machine.responseHead(head) {
        case .ignore:
            return
        case .broken(let reason, let started):
            if let started { recordLatency(since: started) }
            upstreamBroken(UpstreamFramingError(description: reason))
        case .switchToTunnel(let user, let started):
            recordLatency(since: started)
            switchToTunnel(context: context, user: user, head: head)
        case .forward(let rewrite, let upstreamReusable, let started):
            recordLatency(since: started)
            if !upstreamReusable { upstream?.reusable = false }
            var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 64)
            head.write(to: &out, rewrite)
            context.write(wrapOutboundOut(out), promise: nil)
        }
    }

    private func recordLatency(since started: NIODeadline) {
        shared.metrics.upstreamLatency.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
    }

    func upstreamBody(_ body: ByteBuffer) {
        guard let context, machine.isProxying else { return }
        context.write(wrapOutboundOut(body), promise: nil)
    }

    func upstreamEnd() {
        guard let context else { return }
        guard case .finish(let done, let upstreamReusable, let close, let drain) = machine.responseEnded() else {
            return
        }
        finish(done)
        if !upstreamReusable { upstream?.reusable = false }
        if close {
            if let up = upstream {
                upstream = nil
                release(up)
            }
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated()
                .whenComplete { _ in
                    context.close(promise: nil)
                }
        } else {
            context.flush()
            if drain { drainQueued(context: context) }
        }
    }

    /// The upstream's read ended: what was written of a response in progress goes out. (A response's end is flushed
    /// as it is written, and nothing else is written to the client.)
    func upstreamFlush() { if machine.isProxying { context?.flush() } }

    /// The upstream's response did not frame: before the head, answer 502; after it, cut the client connection
    /// (the client must not take what follows for the end of the response).
    func upstreamBroken(_ error: UpstreamFramingError) {
        guard let context else { return }
        let action = machine.responseBroken()
        if case .ignore = action { return }
        let up = upstream
        upstream = nil
        up?.closeQuietly()
        if case .refuse(let done, _) = action {
            logBroken(done, error)
        } else if case .cut(let done) = action {
            logBroken(done, error)
        }
        performFailure(action, context: context)
    }

    private func logBroken(_ done: ClientConnectionStateMachine.Finished, _ error: UpstreamFramingError) {
        shared.logger.warning(
            "upstream response refused",
            metadata: ["user": .string(done.user), "port": "\(done.port)", "error": .string(error.description)]
        )
    }

    /// The upstream closed or could not be reached.
    func upstreamFailed(_ up: UpstreamHandler, connectError: Error?) {
        guard up === upstream else { return }
        upstream = nil
        guard let context else { return }
        let action = machine.upstreamClosed(connectFailed: connectError != nil, reused: up.requestsSent > 1)
        switch action {
        case .retry(let retry):
            let fresh = UpstreamHandler(
                client: self,
                user: retry.user,
                osUser: up.osUser,
                port: retry.port,
                eventLoop: context.eventLoop
            )
            upstream = fresh
            fresh.sendHead(retry.head, isHead: retry.isHead, dechunk: retry.dechunk)
            if retry.requestEnded { fresh.sendEnd(retry.trailers, chunked: retry.chunked) }
            fresh.connect(shared: shared)
        case .refuse(let done, _):
            shared.logger.warning(
                "upstream unavailable",
                metadata: [
                    "user": .string(done.user), "port": "\(done.port)",
                    "error": .string(connectError.map { "\($0)" } ?? "closed before responding"),
                ]
            )
            performFailure(action, context: context)
        case .cut(let done):
            finish(done)
            context.close(promise: nil)
        case .ignore:
            break
        }
    }

    private func performFailure(_ action: ClientConnectionStateMachine.FailureAction, context: ChannelHandlerContext) {
        switch action {
        case .ignore, .retry: break
        case .refuse(let done, let refusal):
            finish(done)
            refuse(refusal, context: context)
        case .cut(let done):
            // What was forwarded goes out; the client sees the response cut short, never completed by us.
            finish(done)
            context.flush()
            context.close(promise: nil)
        }
    }
}
