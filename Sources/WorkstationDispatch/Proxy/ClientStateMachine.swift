import NIOCore
import NIOHTTP1

/// One proxied request/response exchange on a client connection: the `proxying` state's data.
struct Exchange {
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
    /// The head as sent upstream, kept for one retry on a fresh connection.
    let upstreamHead: ByteBuffer
    /// The final response's status once its head arrived; 0 before.
    var status = 0
    var responseStarted = false
    var closeAfter = false
    /// Whether any body part was forwarded.
    var sentBody = false
    var requestEnded = false
    var endTrailers: HTTPHeaders?
    var retried = false

    init(
        user: String,
        port: Int,
        head: HTTPRequestHead,
        upstreamHead: ByteBuffer,
        upgrade: Bool,
        webSocket: Bool,
        started: NIODeadline = .now()
    ) {
        self.user = user
        self.port = port
        self.requestVersion = head.version
        self.method = head.method
        self.keepAlive = head.isKeepAlive
        self.upgrade = upgrade
        self.webSocket = webSocket
        self.chunkedRequest = head.headers.contains(name: "transfer-encoding")
        self.upstreamHead = upstreamHead
        self.started = started
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

/// The client connection's state: which request is in progress, which pipelined parts wait, whether a read is
/// held back, whether the peer may send requests at all. Pure: it takes events (parts from the request decoder,
/// the gate's outcome, what the upstream did, backpressure) and returns the actions `ClientHandler` performs, so
/// every sequence of events can be checked without a channel.
///
/// Requests on one connection are handled one at a time: a pipelined request (RFC 9112 section 9.3.2) waits, with
/// reading held, until the response before it has ended; so do the parts that follow a request whose token is
/// being verified. A refused request, and a response after which the connection closes, end the connection: later
/// parts are dropped.
struct ClientConnectionStateMachine {
    enum State {
        case idle
        /// A request's head is at the gate (`RequestAction.gate`), whose outcome comes next: `routed`, `refused` or
        /// `verificationStarted`. Parts that arrive meanwhile wait.
        case gating
        /// The request with this head waits for its token's verification (a cache miss).
        case verifying(HTTPRequestHead)
        case proxying(Exchange)
        /// Refused, or the response ends the connection: nothing more is read from it.
        case closing
        /// After a WebSocket handshake: the connection carries the tunnel's bytes.
        case upgraded
        /// Transient, while an exchange is updated in place (no copy of its buffers).
        case modifying
    }

    /// Whether the peer may send requests (decided once per connection).
    enum PeerTrust: Equatable {
        case trusted
        /// Not believed; the reason is for the log.
        case untrusted(String)
    }

    /// An answer the dispatcher makes itself (a short page), after which the connection closes.
    struct Refusal: Equatable {
        var status: HTTPResponseStatus
        var version: HTTPVersion
        var method: HTTPMethod
        /// For the log line "refused", never the client; nil: no such line (the event was logged already).
        var reason: String?
        /// The routed user, for the log.
        var user: String? = nil
    }

    /// An exchange that is over: its status is counted (unless 0) and its user's active slot returned.
    struct Finished: Equatable {
        var user: String
        var port: Int
        var status: Int
    }

    /// The request sent once more on a new upstream connection.
    struct Retry: Equatable {
        var user: String
        var port: Int
        var head: ByteBuffer
        var isHead: Bool
        var dechunk: Bool
        var chunked: Bool
        /// The request's end was forwarded already: send it again (with these trailers) after the head.
        var requestEnded: Bool
        var trailers: HTTPHeaders?
    }

    enum RequestAction: Equatable {
        /// Nothing: the part waits, or is dropped.
        case none
        /// Check the identity and route the request: report `routed`, `refused` or `verificationStarted`.
        case gate(HTTPRequestHead)
        case forwardBody(ByteBuffer, chunked: Bool)
        /// Forward the request's end (and flush the upstream).
        case forwardEnd(HTTPHeaders?, chunked: Bool)
        case refuse(Refusal)
    }

    enum ResponseHeadAction: Equatable {
        case ignore
        /// Write the head, rewritten; when `upstreamReusable` is false the upstream connection is not reused.
        case forward(UpstreamResponseHead.Rewrite, upstreamReusable: Bool, started: NIODeadline)
        /// Answer the handshake with the 101 and hand both connections to a byte tunnel.
        case switchToTunnel(user: String, started: NIODeadline)
        /// The head cannot be passed on: report `responseBroken` (`started` is nil when it is refused before the
        /// response counts as started).
        case broken(reason: String, started: NIODeadline?)
    }

    enum ResponseEndAction: Equatable {
        case ignore
        /// The exchange is over. `closeConnection`: flush, then close the client connection, and hand the
        /// upstream connection back; otherwise flush and, with `drainQueued`, take the next pipelined request.
        case finish(Finished, upstreamReusable: Bool, closeConnection: Bool, drainQueued: Bool)
    }

    enum FailureAction: Equatable {
        case ignore
        /// Answer with a page (502) and close.
        case refuse(Finished, Refusal)
        /// The response started: close the client connection, so it cannot take a cut response for a whole one.
        case cut(Finished)
        case retry(Retry)
    }

    enum InactiveAction: Equatable {
        /// The request in progress is abandoned: its slot returned, not counted; close its upstream connection.
        case abandon(Finished)
        /// Between requests: the upstream connection, if any, is idle and may be kept.
        case releaseUpstream
    }

    enum ErrorAction: Equatable {
        case refuse(Refusal)
        case close
    }

    private(set) var state = State.idle
    private(set) var peer = PeerTrust.untrusted("peer not checked")
    /// Identity headers already checked on this connection (`Gate.decide`).
    var checkedIdentity: CheckedIdentity?
    /// Parts of requests that must wait (pipelined behind a response, or behind a token check), in order.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// A read was asked for and held back.
    private var readHeld = false

    var isProxying: Bool {
        if case .proxying = state { return true }
        return false
    }

    /// A request is going upstream and its end has not: what was forwarded of it may wait for a flush. (Its end is
    /// flushed as it is forwarded; nothing else is written upstream.)
    var requestInFlight: Bool {
        if case .proxying(let ex) = state { return !ex.requestEnded }
        return false
    }

    /// A request is at the gate or its token is being verified: every part waits.
    private var isWaitingForGate: Bool {
        switch state {
        case .gating, .verifying: return true
        default: return false
        }
    }

    /// Number of parts waiting.
    var queuedCount: Int { queued.count }

    // MARK: peer

    mutating func peerChecked(_ trust: PeerTrust) { peer = trust }

    // MARK: requests

    /// A part from the request decoder.
    mutating func received(_ part: HTTPServerRequestPart) -> RequestAction {
        if !queued.isEmpty || isWaitingForGate {
            queued.append(part)
            return .none
        }
        return handle(part)
    }

    /// The next waiting part that can be handled now, once the connection is idle again (or a token check ended);
    /// nil when the rest must wait or none is left.
    mutating func nextQueued() -> RequestAction? {
        guard let first = queued.first, !isWaitingForGate else { return nil }
        if case .head = first {
            guard case .idle = state else { return nil }
        }
        queued.removeFirst()
        return handle(first)
    }

    private mutating func handle(_ part: HTTPServerRequestPart) -> RequestAction {
        switch part {
        case .head(let head):
            switch state {
            case .idle: return start(head)
            case .proxying, .gating, .verifying:
                queued.append(part)  // pipelined: waits for the current response
                return .none
            case .closing, .upgraded: return .none
            case .modifying: preconditionFailure("client state machine re-entered")
            }
        case .body(let body):
            guard case .proxying(var ex) = state else { return .none }
            state = .modifying
            ex.sentBody = true
            state = .proxying(ex)
            return .forwardBody(body, chunked: ex.chunkedRequest)
        case .end(let trailers):
            guard case .proxying(var ex) = state else { return .none }
            state = .modifying
            ex.requestEnded = true
            ex.endTrailers = trailers
            state = .proxying(ex)
            return .forwardEnd(trailers, chunked: ex.chunkedRequest)
        }
    }

    private mutating func start(_ head: HTTPRequestHead) -> RequestAction {
        // CONNECT asks for a tunnel to an arbitrary address, which no person's instance serves; NIO's decoder also
        // stops reading requests after one.
        if head.method == .CONNECT {
            state = .closing
            return .refuse(
                Refusal(status: .methodNotAllowed, version: head.version, method: head.method, reason: "CONNECT")
            )
        }
        if case .untrusted(let problem) = peer {
            state = .closing
            return .refuse(Refusal(status: .forbidden, version: head.version, method: head.method, reason: problem))
        }
        state = .gating
        return .gate(head)
    }

    // MARK: the gate's outcome

    /// The request's token is not in the cache: it is verified, and the connection's parts wait meanwhile.
    mutating func verificationStarted(_ head: HTTPRequestHead) {
        precondition(isGating, "a token check starts only for a request at the gate")
        state = .verifying(head)
    }

    /// The token check ended: the head to gate again (with the verified identity, or to refuse), or nil when the
    /// connection closed meanwhile.
    mutating func verificationEnded() -> HTTPRequestHead? {
        guard case .verifying(let head) = state else { return nil }
        state = .gating
        return head
    }

    /// The gate refused the request.
    mutating func refused(_ refusal: Refusal) -> Refusal {
        state = .closing
        return refusal
    }

    /// The gate routed the request: its head goes upstream.
    mutating func routed(_ exchange: Exchange) {
        precondition(isGating, "a request is routed only from the gate")
        state = .proxying(exchange)
    }

    private var isGating: Bool {
        if case .gating = state { return true }
        return false
    }

    // MARK: the upstream's response

    /// The final response's head arrived.
    mutating func responseHead(_ head: UpstreamResponseHead) -> ResponseHeadAction {
        guard case .proxying(var ex) = state else { return .ignore }
        // A switch nobody asked for (only WebSocket handshakes are passed upstream): the connection would carry
        // bytes we cannot frame. Checked before the response counts as started, so the client gets a 502.
        if head.status == 101 && !ex.webSocket {
            return .broken(reason: "the upstream switched protocols without a WebSocket request", started: nil)
        }
        state = .modifying
        ex.responseStarted = true
        ex.status = head.status
        if head.status == 101 {
            guard queued.isEmpty else {
                // A request pipelined behind a handshake would be lost in the tunnel: refuse the switch.
                state = .proxying(ex)
                return .broken(reason: "a request was pipelined behind a WebSocket handshake", started: ex.started)
            }
            state = .upgraded
            return .switchToTunnel(user: ex.user, started: ex.started)
        }
        let dechunk = ex.dechunk && head.framing == .chunked
        // An upgrade request the upstream declined leaves the request decoder stopped (it expects the switch):
        // finish this response and close. A body that ends with the upstream's close, or an HTTP/1.0 client's
        // de-chunked body, is delimited by closing too.
        ex.closeAfter = !ex.keepAlive || ex.upgrade || head.framing == .untilClose || dechunk
        var rewrite = UpstreamResponseHead.Rewrite()
        rewrite.minorVersion = ex.dechunk ? 0 : 1
        rewrite.dropTransferEncoding = dechunk
        rewrite.contentLengthZero =
            ex.method == .HEAD && !head.has("content-length") && !head.has("transfer-encoding")
        if ex.closeAfter {
            rewrite.connection = .close
        } else if ex.dechunk {
            rewrite.connection = .keepAlive
        }
        state = .proxying(ex)
        return .forward(rewrite, upstreamReusable: head.keepAlive, started: ex.started)
    }

    /// The response's end was framed.
    mutating func responseEnded() -> ResponseEndAction {
        guard case .proxying(let ex) = state else { return .ignore }
        // A connection that closes after this response takes no further request meanwhile.
        state = ex.closeAfter ? .closing : .idle
        return .finish(
            Finished(user: ex.user, port: ex.port, status: ex.status),
            // A response that ended before the request did leaves a partial request on the upstream connection.
            upstreamReusable: ex.requestEnded && !ex.upgrade,
            closeConnection: ex.closeAfter,
            drainQueued: !ex.closeAfter && !queued.isEmpty
        )
    }

    /// The upstream's response did not frame: before the head, answer 502; after it, cut the client connection
    /// (the client must not take what follows for the end of the response).
    mutating func responseBroken() -> FailureAction {
        guard case .proxying(let ex) = state else { return .ignore }
        state = .closing
        if !ex.responseStarted {
            return .refuse(
                Finished(user: ex.user, port: ex.port, status: 0),
                Refusal(status: .badGateway, version: ex.requestVersion, method: ex.method, reason: nil)
            )
        }
        return .cut(Finished(user: ex.user, port: ex.port, status: ex.status))
    }

    /// The upstream connection closed, or could not be opened (`connectFailed`); `reused`: it had carried an
    /// earlier request.
    mutating func upstreamClosed(connectFailed: Bool, reused: Bool) -> FailureAction {
        guard case .proxying(var ex) = state else { return .ignore }
        if !connectFailed, reused, ex.retryable {
            // A kept-alive connection the upstream closed as this request went out (its idle timeout): send the
            // request once more on a new connection, as RFC 9112 section 9.3.1 allows for idempotent requests.
            state = .modifying
            ex.retried = true
            state = .proxying(ex)
            return .retry(
                Retry(
                    user: ex.user,
                    port: ex.port,
                    head: ex.upstreamHead,
                    isHead: ex.method == .HEAD,
                    dechunk: ex.dechunk,
                    chunked: ex.chunkedRequest,
                    requestEnded: ex.requestEnded,
                    trailers: ex.endTrailers
                )
            )
        }
        state = .closing
        if !ex.responseStarted {
            return .refuse(
                Finished(user: ex.user, port: ex.port, status: 0),
                Refusal(status: .badGateway, version: ex.requestVersion, method: ex.method, reason: nil)
            )
        }
        return .cut(Finished(user: ex.user, port: ex.port, status: ex.status))
    }

    // MARK: the connection

    /// The client connection closed.
    mutating func channelInactive() -> InactiveAction {
        defer { state = .closing }
        if case .proxying(let ex) = state {
            return .abandon(Finished(user: ex.user, port: ex.port, status: 0))  // never completed; not counted
        }
        return .releaseUpstream
    }

    /// An error reached the handler: a request that does not parse is answered 400 when no exchange is under way.
    mutating func errorCaught(isParserError: Bool) -> ErrorAction {
        if isParserError, case .idle = state {
            state = .closing
            return .refuse(Refusal(status: .badRequest, version: .http1_1, method: .GET, reason: nil))
        }
        return .close
    }

    // MARK: backpressure

    /// The channel asks for a read: held while parts wait, a token is verified, or the upstream cannot take more.
    mutating func readRequested(upstreamWritable: Bool) -> Bool {
        if !queued.isEmpty || isWaitingForGate || !upstreamWritable {
            readHeld = true
            return false
        }
        return true
    }

    /// The upstream can take more (or the queue drained): true when a held read should be made now.
    mutating func upstreamBecameWritable() -> Bool {
        guard readHeld, queued.isEmpty else { return false }
        readHeld = false
        return true
    }
}
