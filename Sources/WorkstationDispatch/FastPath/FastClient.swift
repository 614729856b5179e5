import Logging
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A client connection on the fast path: a trusted front proxy's connection, whose requests are scanned
/// (`RequestHeadScanner`), gated (`Gate.decide`, the same decision as the full path's) and sent to the routed
/// person's upstream (`FastUpstream`), one request at a time, the response's bytes framed by `ResponseFramer` and
/// passed back with the head's hop-by-hop fields rewritten as `ClientConnectionStateMachine.responseHead` rewrites
/// them.
///
/// Whatever the fast path does not serve itself goes to the full path (`FastPath.handoff`) at a request boundary,
/// with the bytes read and not yet used: a request outside the scanner's subset, a refusal (the full path answers
/// it, with its log line), a token not yet verified, a kubernetes-placed person, the active-user ceiling, and a
/// reused upstream connection that closed before answering an idempotent request without a body (sent once more).
/// Confined to its loop's thread.
final class FastClient {
    struct Exchange {
        var user: String
        var port: Int
        var head: ScannedHead
        var started: NIODeadline
        /// Body bytes not yet forwarded.
        var bodyRemaining: Int
        /// The head's bytes are still at the front of `input` (a request without a body, until its response
        /// starts), so that it can be handed to the full path to be sent once more.
        var headHeld = false
        var status = 0
        var responseStarted = false
        var closeAfter = false
        var retried = false
    }

    enum State {
        case idle
        /// The head at the front of `input` carries a token not seen before, being verified off the loop.
        case verifying
        /// Waiting for a new upstream connection (nothing of the request consumed yet).
        case connecting(Exchange)
        case proxying(Exchange)
        case closing
    }

    let fd: Int32
    var generation: UInt32 = 0
    unowned(unsafe) let loop: FastLoop
    private var shared: DispatchShared { loop.shared }
    /// Bytes read from the client and not yet used.
    private var input = ByteBufferAllocator().buffer(capacity: 4096)
    /// Bytes waiting to be written to the client.
    private(set) var output = ByteBufferAllocator().buffer(capacity: 0)
    /// The peer shut down its side (`EPOLLRDHUP`, `EPOLLHUP`) or the socket failed: read on until `read` says so
    /// (a short read does not mean drained then, since the close's edge came with the last bytes').
    private var hungUp = false
    /// Edge-triggered: the socket may hold bytes not read yet.
    private var readable = true
    private(set) var state = State.idle
    private var upstream: FastUpstream?
    private var checked: CheckedIdentity?
    private var tokenMemo: TokenMemo?
    private var closeWhenFlushed = false
    private(set) var closed = false
    /// Most bytes held from a client while a response is under way (pipelined requests wait here).
    private static let maxHeld = 64 * 1024

    init(fd: Int32, loop: FastLoop) {
        self.fd = fd
        self.loop = loop
    }

    var isIdle: Bool { if case .idle = state { !closed } else { false } }

    func handle(_ events: UInt32) {
        if closed { return }
        if events & (Epoll.input | Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { readable = true }
        if events & (Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { hungUp = true }
        if events & Epoll.output != 0, output.readableBytes > 0 {
            guard flush() else { return }
            upstream?.pump()
            if closed { return }
        }
        pump()
    }

    // MARK: requests

    /// Handles what was read (the next request, or the current request's body) and reads more while it can.
    func pump() {
        while !closed {
            switch state {
            case .idle:
                // The last response is still being written (the client reads slowly): the next request waits, so
                // that nothing (the full path's answer after a hand-over, above all) can overtake it.
                if output.readableBytes > 0 { return }
                if input.readableBytes > 0 {
                    switch input.withUnsafeReadableBytes({ RequestHeadScanner.scan($0) }) {
                    case .head(let head):
                        route(head)
                        continue
                    case .handoff(let reason):
                        handOff(reason)
                        return
                    case .incomplete: break
                    }
                }
            case .proxying(var ex) where ex.bodyRemaining > 0:
                guard let up = upstream, up.output.readableBytes == 0 else { return }  // its EPOLLOUT resumes us
                if input.readableBytes > 0 {
                    let n = min(input.readableBytes, ex.bodyRemaining)
                    up.send(input.readSlice(length: n)!)
                    ex.bodyRemaining -= n
                    state = .proxying(ex)
                    guard up.flush() else { return upstreamFailed(up) }
                    continue
                }
            case .closing:
                return
            case .verifying, .connecting, .proxying:
                // Read on only to notice the client leaving, and to hold pipelined requests (up to a limit).
                if input.readableBytes >= Self.maxHeld { return }
            }
            guard readable, !closed else { return }
            if !readMore() { return }
        }
    }

    /// One `read` into `input`; false when nothing came (drained, or the connection is gone).
    private func readMore() -> Bool {
        if input.readableBytes == 0 { input.clear() }
        switch SocketIO.read(fd, into: &input, atLeast: 4096) {
        case .data(let short):
            if short && !hungUp { readable = false }
            return true
        case .empty:
            readable = false
            return false
        case .closed:
            peerClosed()
            return false
        }
    }

    private func route(_ head: ScannedHead) {
        let decision: GateDecision? = input.withUnsafeReadableBytes { bytes in
            let fields = IdentityFields(head, in: bytes)
            let lookup = { (user: String) in self.loop.route(user) }
            guard let verifier = shared.verifier else {
                return Gate.decide(
                    fields: fields,
                    gateGroup: shared.config.gateGroup,
                    checked: &checked,
                    lookup: lookup
                )
            }
            guard head.token.count == 1, !head.token.value.isEmpty,
                let identity = verifier.cached(bytes: bytes[field: head.token.value], memo: &tokenMemo)
            else { return nil }
            return Gate.decide(fields: fields, token: identity, gateGroup: shared.config.gateGroup, lookup: lookup)
        }
        guard let decision else {
            if let verifier = shared.verifier, head.token.count == 1, !head.token.value.isEmpty {
                return verify(head, verifier: verifier)
            }
            return handOff("refused")
        }
        guard case .route(let user, let osUser, let port, let workspace) = decision else {
            return handOff("refused")
        }
        if workspace != nil { return handOff("workspace") }
        guard let active = shared.active.acquireCounting(user) else { return handOff("active user ceiling") }
        shared.metrics.activeUsers.set(Double(active))
        let ex = Exchange(user: user, port: port, head: head, started: .now(), bodyRemaining: head.contentLength)
        if let up = upstream, up.user == user, up.port == port, up.usable {
            return commit(ex, on: up)
        }
        if let old = upstream {
            upstream = nil
            old.release()
        }
        if let up = loop.takeIdle(user: user, port: port) {
            up.attach(self)
            upstream = up
            return commit(ex, on: up)
        }
        connect(ex, osUser: osUser)
    }

    /// Verifies a token not seen before off the loop (jwt-kit's key collection is an actor); the connection waits,
    /// then the head is gated again (the token now found in the cache), or handed to the full path, which refuses it
    /// with its log line.
    private func verify(_ head: ScannedHead, verifier: TokenVerifier) {
        state = .verifying
        let token = input.withUnsafeReadableBytes { String(decoding: $0[field: head.token.value], as: UTF8.self) }
        let loop = self.loop
        let client = FastLoop.Bound(value: self)
        Task {
            let verified = if case .success = await verifier.verify(token) { true } else { false }
            loop.post {
                let me = client.value
                guard case .verifying = me.state, !me.closed else { return }
                me.state = .idle
                if verified { me.pump() } else { me.handOff("refused") }
            }
        }
    }

    private func connect(_ ex: Exchange, osUser: String) {
        state = .connecting(ex)
        let up = FastUpstream(loop: loop, user: ex.user, osUser: osUser, port: ex.port, client: self)
        upstream = up
        up.connect()
    }

    /// The new upstream connection is open and its listener belongs to the person.
    func upstreamConnected(_ up: FastUpstream) {
        guard up === upstream, case .connecting(let ex) = state else { return up.release() }
        commit(ex, on: up)
        pump()  // the rest of the body, held while the connection was made
    }

    /// Sends the request's head, and what has come of its body, on `up`.
    private func commit(_ exchange: Exchange, on up: FastUpstream) {
        var ex = exchange
        up.expectResponse(isHead: ex.head.isHead)
        input.withUnsafeReadableBytes { bytes in
            up.sendHead(bytes, ex.head, user: ex.user)
        }
        if ex.bodyRemaining == 0 {
            ex.headHeld = true
        } else {
            input.moveReaderIndex(forwardBy: ex.head.length)
            let n = min(input.readableBytes, ex.bodyRemaining)
            if n > 0 {
                up.send(input.readSlice(length: n)!)
                ex.bodyRemaining -= n
            }
        }
        state = .proxying(ex)
        if !up.flush() { upstreamFailed(up) }
    }

    // MARK: responses (called by the upstream)

    /// The final response's head: written to `output` rewritten, unless it cannot be passed on (a 101 nobody asked
    /// for), which ends the exchange with 502.
    func responseHead(_ head: UpstreamResponseHead, from up: FastUpstream) -> Bool {
        guard up === upstream, case .proxying(var ex) = state else { return false }
        if head.status == 101 {
            upstreamBroken(up, "the upstream switched protocols without a WebSocket request")
            return false
        }
        if ex.headHeld {
            input.moveReaderIndex(forwardBy: ex.head.length)
            ex.headHeld = false
        }
        ex.responseStarted = true
        ex.status = head.status
        // A response that comes before the request's body is all here ends the connection: the rest of the body
        // must never be read as a request of its own (the full path's decoder knows where it ends; this one stops
        // reading).
        ex.closeAfter = !ex.head.keepAlive || head.framing == .untilClose || ex.bodyRemaining > 0
        var rewrite = UpstreamResponseHead.Rewrite()
        rewrite.contentLengthZero =
            ex.head.isHead && !head.has("content-length") && !head.has("transfer-encoding")
        if ex.closeAfter { rewrite.connection = .close }
        if !head.keepAlive { up.reusable = false }
        state = .proxying(ex)
        shared.metrics.upstreamLatency.recordNanoseconds((NIODeadline.now() - ex.started).nanoseconds)
        head.write(to: &output, rewrite)
        return true
    }

    func responseBody(_ body: ByteBuffer) {
        if case .proxying = state { output.writeImmutableBuffer(body) }
    }

    /// The response's end: the exchange is counted; the connection takes the next request, or closes once the
    /// response is written (`Connection: close`, or a body delimited by the upstream's close).
    func responseEnd(from up: FastUpstream) {
        guard up === upstream, case .proxying(let ex) = state else { return }
        finish(ex.user, status: ex.status)
        // A response that ended before its request did leaves a partial request on the upstream connection.
        if ex.bodyRemaining > 0 { up.reusable = false }
        if ex.closeAfter {
            state = .closing
            upstream = nil
            up.release()
            closeWhenFlushed = true
        } else {
            state = .idle
        }
    }

    /// The upstream's response did not frame: before its head, 502; after it, the client connection is cut.
    func upstreamBroken(_ up: FastUpstream, _ reason: String) {
        guard up === upstream else { return }
        if case .proxying(let ex) = state {
            shared.logger.warning(
                "upstream response refused",
                metadata: ["user": .string(ex.user), "port": "\(ex.port)", "error": .string(reason)]
            )
        }
        up.close()
        fail(up, retry: false, reason: nil)
    }

    /// The upstream connection closed, or could not be opened or verified (`reason` then names why).
    func upstreamFailed(_ up: FastUpstream, reason: String? = nil) {
        guard up === upstream else { return }
        up.close()
        fail(up, retry: true, reason: reason ?? "closed before responding")
    }

    private func fail(_ up: FastUpstream, retry: Bool, reason: String?) {
        upstream = nil
        let ex: Exchange
        switch state {
        case .connecting(let e): ex = e
        case .proxying(let e): ex = e
        case .idle, .verifying, .closing: return
        }
        if ex.responseStarted {
            // What was written goes out; the client sees the response cut short, never completed by us.
            finish(ex.user, status: ex.status)
            state = .closing
            closeWhenFlushed = true
            _ = flush()
            return
        }
        if retry, ex.headHeld, ex.head.idempotent, !ex.retried, up.requestsSent > 1 {
            // A kept-alive connection the upstream closed as this request went out (its idle timeout): the full
            // path sends it once more on a new connection (RFC 9112 section 9.3.1).
            finish(ex.user, status: 0)
            state = .idle
            return handOff("retry on a new upstream connection")
        }
        if let reason {
            shared.logger.warning(
                "upstream unavailable",
                metadata: ["user": .string(ex.user), "port": "\(ex.port)", "error": .string(reason)]
            )
        }
        finish(ex.user, status: 0)
        state = .closing
        shared.metrics.countResponse(502)
        RefusalPage.write(.badGateway, version: .http1_1, method: ex.head.isHead ? .HEAD : .GET, to: &output)
        closeWhenFlushed = true
        _ = flush()
    }

    /// Counts the exchange's status (unless 0) and returns its user's active slot.
    private func finish(_ user: String, status: Int) {
        if status != 0 { shared.metrics.countResponse(status) }
        shared.metrics.activeUsers.set(Double(shared.active.releaseCounting(user)))
    }

    // MARK: writing

    /// Writes what waits in `output`; false when some is left (the socket's buffer is full: its EPOLLOUT resumes
    /// us) or the connection is gone.
    @discardableResult
    func flush() -> Bool {
        switch SocketIO.write(fd, from: &output) {
        case .written: break
        case .blocked: return false
        case .failed:
            peerClosed()
            return false
        }
        if closeWhenFlushed {
            close()
            return false
        }
        return true
    }

    // MARK: the connection

    /// The client closed (or the connection failed): an exchange under way is abandoned (its slot returned, not
    /// counted) and its upstream connection closed; an idle one goes to the pool.
    private func peerClosed() {
        if closed { return }
        switch state {
        case .connecting(let ex), .proxying(let ex):
            finish(ex.user, status: 0)
            upstream?.close()
        case .idle, .verifying, .closing:
            upstream?.release()
        }
        upstream = nil
        close()
    }

    /// Gives the connection to the full path with the bytes not used yet (at a request boundary).
    private func handOff(_ reason: String) {
        if let up = upstream {
            upstream = nil
            up.release()
        }
        closed = true
        loop.forget(fd)
        loop.intake.handoff(fd, preface: input.readableBytes > 0 ? input : nil, reason: reason)
    }

    func close() {
        if closed { return }
        closed = true
        state = .closing
        if let up = upstream {
            upstream = nil
            up.close()
        }
        loop.close(fd)
    }
}
