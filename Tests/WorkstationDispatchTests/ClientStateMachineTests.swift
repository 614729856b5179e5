import NIOCore
import NIOHTTP1
import Testing

@testable import WorkstationDispatch

/// The client connection's state machine on its own: each row is a sequence of events and the actions it must
/// return, one per event (rendered as short strings).
@Suite struct ClientStateMachineTests {
    typealias Machine = ClientConnectionStateMachine

    enum Event {
        case peer(Machine.PeerTrust)
        case head(HTTPMethod, String, version: HTTPVersion = .http1_1, headers: [(String, String)] = [])
        case body(Int)
        case end
        /// The gate routed the last gated head to alice.
        case routed
        case refused(HTTPResponseStatus)
        case verificationStarted
        case verificationEnded
        /// Every waiting part that can be handled now.
        case drain
        case responseHead(String)
        case responseEnded
        case responseBroken
        case upstreamClosed(connectFailed: Bool, reused: Bool)
        case read(upstreamWritable: Bool)
        case upstreamWritable
        case inactive
        case error(parser: Bool)
    }

    static let started = NIODeadline.uptimeNanoseconds(0)

    /// Runs `events` on a new machine; one rendered action per event.
    func run(_ events: [Event]) throws -> [String] {
        var m = Machine()
        var lastGated: HTTPRequestHead?
        var out: [String] = []
        func request(_ a: Machine.RequestAction) -> String {
            switch a {
            case .none: return "none"
            case .gate(let h):
                lastGated = h
                return "gate \(h.method) \(h.uri)"
            case .forwardBody(let b, let chunked): return "body \(b.readableBytes)" + (chunked ? " chunked" : "")
            case .forwardEnd(_, let chunked): return "end" + (chunked ? " chunked" : "")
            case .refuse(let r): return "refuse \(r.status.code)"
            }
        }
        func failure(_ a: Machine.FailureAction) -> String {
            switch a {
            case .ignore: return "ignore"
            case .refuse(let done, let r): return "refuse \(r.status.code), counted \(done.status)"
            case .cut(let done): return "cut, counted \(done.status)"
            case .retry(let r): return "retry" + (r.requestEnded ? " with end" : "")
            }
        }
        for event in events {
            switch event {
            case .peer(let trust):
                m.peerChecked(trust)
                out.append("-")
            case .head(let method, let uri, let version, let headers):
                let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
                out.append(request(m.received(.head(head))))
            case .body(let n):
                out.append(request(m.received(.body(ByteBuffer(repeating: 0x61, count: n)))))
            case .end:
                out.append(request(m.received(.end(nil))))
            case .routed:
                let head = try #require(lastGated)
                let webSocket = Gate.isWebSocketUpgrade(head.headers)
                m.routed(
                    Exchange(
                        user: "alice",
                        port: 8001,
                        head: head,
                        upstreamHead: ByteBuffer(string: "\(head.method) \(head.uri) HTTP/1.1\r\n\r\n"),
                        upgrade: webSocket || head.headers.contains(name: "upgrade"),
                        webSocket: webSocket,
                        started: Self.started
                    )
                )
                out.append("-")
            case .refused(let status):
                let head = try #require(lastGated)
                let r = m.refused(.init(status: status, version: head.version, method: head.method, reason: "test"))
                out.append("refuse \(r.status.code)")
            case .verificationStarted:
                m.verificationStarted(try #require(lastGated))
                out.append("-")
            case .verificationEnded:
                out.append(m.verificationEnded().map { "resume \($0.uri)" } ?? "gone")
            case .drain:
                var done: [String] = []
                while let a = m.nextQueued() { done.append(request(a)) }
                out.append(done.isEmpty ? "nothing" : done.joined(separator: ", "))
            case .responseHead(let wire):
                let isHead = lastGated?.method == .HEAD
                let head = try ResponseFramer.parseHead(ByteBuffer(string: wire), noBody: isHead)
                switch m.responseHead(head) {
                case .ignore: out.append("ignore")
                case .forward(let rw, let reusable, _):
                    var s = "forward 1.\(rw.minorVersion)"
                    if let c = rw.connection { s += " \(c)" }
                    if rw.dropTransferEncoding { s += " dechunked" }
                    if rw.contentLengthZero { s += " length 0" }
                    if !reusable { s += ", upstream not reusable" }
                    out.append(s)
                case .switchToTunnel(let user, _): out.append("tunnel \(user)")
                case .broken(_, let started): out.append(started == nil ? "broken before start" : "broken after start")
                }
            case .responseEnded:
                switch m.responseEnded() {
                case .ignore: out.append("ignore")
                case .finish(let done, let reusable, let close, let drain):
                    var s = "finish \(done.user) \(done.status)"
                    if !reusable { s += ", upstream not reusable" }
                    if close { s += ", close" }
                    if drain { s += ", drain" }
                    out.append(s)
                }
            case .responseBroken:
                out.append(failure(m.responseBroken()))
            case .upstreamClosed(let connectFailed, let reused):
                out.append(failure(m.upstreamClosed(connectFailed: connectFailed, reused: reused)))
            case .read(let writable):
                out.append(m.readRequested(upstreamWritable: writable) ? "read" : "hold")
            case .upstreamWritable:
                out.append(m.upstreamBecameWritable() ? "read" : "-")
            case .inactive:
                switch m.channelInactive() {
                case .abandon(let done): out.append("abandon \(done.user), counted \(done.status)")
                case .releaseUpstream: out.append("release upstream")
                }
            case .error(let parser):
                switch m.errorCaught(isParserError: parser) {
                case .refuse(let r): out.append("refuse \(r.status.code)")
                case .close: out.append("close")
                }
            }
        }
        return out
    }

    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    static let webSocket: [(String, String)] = [("Upgrade", "websocket"), ("Connection", "Upgrade")]

    static let rows: [(String, [Event], [String])] = [
        (
            "one request on a trusted connection, kept alive",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end, .responseHead(ok), .responseEnded,
                .read(upstreamWritable: true),
            ],
            ["-", "gate GET /", "-", "end", "forward 1.1", "finish alice 200", "read"]
        ),
        (
            "a peer that is not the front proxy is refused before the gate, and nothing after is read",
            [.peer(.untrusted("uid 1000")), .head(.GET, "/"), .end, .head(.GET, "/b"), .drain],
            ["-", "refuse 403", "none", "none", "nothing"]
        ),
        (
            "an unchecked peer is never trusted",
            [.head(.GET, "/")],
            ["refuse 403"]
        ),
        (
            "CONNECT is refused even from the front proxy",
            [.peer(.trusted), .head(.CONNECT, "example.org:443")],
            ["-", "refuse 405"]
        ),
        (
            "the gate's refusal closes the connection: a pipelined request is dropped",
            [.peer(.trusted), .head(.GET, "/"), .refused(.forbidden), .end, .head(.GET, "/b"), .drain],
            ["-", "gate GET /", "refuse 403", "none", "none", "nothing"]
        ),
        (
            "a pipelined request waits, with reading held, until the response before it ended",
            [
                .peer(.trusted), .head(.GET, "/a"), .routed, .end, .head(.GET, "/b"), .end,
                .read(upstreamWritable: true),
                .drain, .responseHead(ok), .responseEnded, .drain, .routed, .drain, .upstreamWritable,
            ],
            [
                "-", "gate GET /a", "-", "end", "none", "none", "hold", "nothing", "forward 1.1",
                "finish alice 200, drain",
                "gate GET /b", "-", "end", "read",
            ]
        ),
        (
            "parts that follow a request whose token is being verified wait for the verification",
            [
                .peer(.trusted), .head(.POST, "/"), .verificationStarted, .body(5), .end, .read(upstreamWritable: true),
                .drain, .verificationEnded, .routed, .drain, .upstreamWritable,
            ],
            ["-", "gate POST /", "-", "none", "none", "hold", "nothing", "resume /", "-", "body 5, end", "read"]
        ),
        (
            "a pipelined request whose token is verified keeps its body until the verification ends",
            [
                .peer(.trusted), .head(.GET, "/a"), .routed, .end, .head(.POST, "/b"), .body(3), .end,
                .responseHead(ok),
                .responseEnded, .drain, .verificationStarted, .drain, .verificationEnded, .routed, .drain,
            ],
            [
                "-", "gate GET /a", "-", "end", "none", "none", "none", "forward 1.1", "finish alice 200, drain",
                "gate POST /b", "-", "nothing", "resume /b", "-", "body 3, end",
            ]
        ),
        (
            "a connection that closes during a token check is not resumed",
            [.peer(.trusted), .head(.GET, "/"), .verificationStarted, .inactive, .verificationEnded],
            ["-", "gate GET /", "-", "release upstream", "gone"]
        ),
        (
            "an HTTP/1.0 client gets a chunked body de-chunked, then the connection closes",
            [
                .peer(.trusted), .head(.GET, "/", version: .http1_0), .routed, .end,
                .responseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .responseEnded,
            ],
            ["-", "gate GET /", "-", "end", "forward 1.0 close dechunked", "finish alice 200, close"]
        ),
        (
            "an HTTP/1.0 keep-alive client with a length-framed body stays open",
            [
                .peer(.trusted), .head(.GET, "/", version: .http1_0, headers: [("Connection", "keep-alive")]), .routed,
                .end, .responseHead(ok), .responseEnded,
            ],
            ["-", "gate GET /", "-", "end", "forward 1.0 keepAlive", "finish alice 200"]
        ),
        (
            "a HEAD response that declares no length gets Content-Length: 0",
            [.peer(.trusted), .head(.HEAD, "/"), .routed, .end, .responseHead("HTTP/1.1 200 OK\r\n\r\n")],
            ["-", "gate HEAD /", "-", "end", "forward 1.1 length 0"]
        ),
        (
            "a body delimited by the upstream's close closes the client connection",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end, .responseHead("HTTP/1.1 200 OK\r\n\r\n"),
                .responseEnded,
            ],
            ["-", "gate GET /", "-", "end", "forward 1.1 close, upstream not reusable", "finish alice 200, close"]
        ),
        (
            "the upstream's Connection: close makes its connection unusable, not the client's",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end,
                .responseHead("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            ],
            ["-", "gate GET /", "-", "end", "forward 1.1, upstream not reusable"]
        ),
        (
            "a response that ends before the request did leaves the upstream connection unusable",
            [.peer(.trusted), .head(.POST, "/"), .routed, .body(4), .responseHead(ok), .responseEnded],
            ["-", "gate POST /", "-", "body 4", "forward 1.1", "finish alice 200, upstream not reusable"]
        ),
        (
            "an upgrade the upstream declines ends with the connection's close",
            [
                .peer(.trusted), .head(.GET, "/", headers: [("Upgrade", "h2c")]), .routed, .end, .responseHead(ok),
                .responseEnded,
            ],
            ["-", "gate GET /", "-", "end", "forward 1.1 close", "finish alice 200, upstream not reusable, close"]
        ),
        (
            "a 101 nobody asked for is a 502, counted once",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end,
                .responseHead("HTTP/1.1 101 Switching Protocols\r\n\r\n"), .responseBroken,
            ],
            ["-", "gate GET /", "-", "end", "broken before start", "refuse 502, counted 0"]
        ),
        (
            "a WebSocket handshake's 101 switches to the tunnel; later parts are not HTTP",
            [
                .peer(.trusted), .head(.GET, "/ws", headers: webSocket), .routed, .end,
                .responseHead("HTTP/1.1 101 Switching Protocols\r\n\r\n"), .body(3), .responseEnded,
            ],
            ["-", "gate GET /ws", "-", "end", "tunnel alice", "none", "ignore"]
        ),
        (
            "a request pipelined behind a handshake refuses the switch and cuts the connection",
            [
                .peer(.trusted), .head(.GET, "/ws", headers: webSocket), .routed, .end, .head(.GET, "/b"),
                .responseHead("HTTP/1.1 101 Switching Protocols\r\n\r\n"), .responseBroken,
            ],
            ["-", "gate GET /ws", "-", "end", "none", "broken after start", "cut, counted 101"]
        ),
        (
            "an idempotent request on a reused connection the upstream closed is retried once",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end, .upstreamClosed(connectFailed: false, reused: true),
                .upstreamClosed(connectFailed: false, reused: true),
            ],
            ["-", "gate GET /", "-", "end", "retry with end", "refuse 502, counted 0"]
        ),
        (
            "a POST is never retried",
            [.peer(.trusted), .head(.POST, "/"), .routed, .end, .upstreamClosed(connectFailed: false, reused: true)],
            ["-", "gate POST /", "-", "end", "refuse 502, counted 0"]
        ),
        (
            "a new connection that fails is a 502, without retry",
            [.peer(.trusted), .head(.GET, "/"), .routed, .end, .upstreamClosed(connectFailed: true, reused: false)],
            ["-", "gate GET /", "-", "end", "refuse 502, counted 0"]
        ),
        (
            "an upstream that closes after the response started cuts the client connection",
            [
                .peer(.trusted), .head(.GET, "/"), .routed, .end, .responseHead(ok),
                .upstreamClosed(connectFailed: false, reused: true), .head(.GET, "/b"),
            ],
            ["-", "gate GET /", "-", "end", "forward 1.1", "cut, counted 200", "none"]
        ),
        (
            "a response that stops framing after its head cuts the connection",
            [.peer(.trusted), .head(.GET, "/"), .routed, .end, .responseHead(ok), .responseBroken],
            ["-", "gate GET /", "-", "end", "forward 1.1", "cut, counted 200"]
        ),
        (
            "a client that leaves mid-exchange abandons it uncounted",
            [.peer(.trusted), .head(.GET, "/"), .routed, .inactive, .responseEnded],
            ["-", "gate GET /", "-", "abandon alice, counted 0", "ignore"]
        ),
        (
            "a client that leaves between requests hands its upstream connection back",
            [.peer(.trusted), .head(.GET, "/"), .routed, .end, .responseHead(ok), .responseEnded, .inactive],
            ["-", "gate GET /", "-", "end", "forward 1.1", "finish alice 200", "release upstream"]
        ),
        (
            "a request that does not parse is answered 400 between exchanges, and closed during one",
            [.peer(.trusted), .error(parser: true), .head(.GET, "/")],
            ["-", "refuse 400", "none"]
        ),
        (
            "a parser error during an exchange closes",
            [.peer(.trusted), .head(.GET, "/"), .routed, .error(parser: true)],
            ["-", "gate GET /", "-", "close"]
        ),
        (
            "reading is held while the upstream cannot take more, and resumes once",
            [
                .peer(.trusted), .read(upstreamWritable: false), .upstreamWritable, .upstreamWritable,
                .read(upstreamWritable: true),
            ],
            ["-", "hold", "read", "-", "read"]
        ),
        (
            "a chunked request body is forwarded chunked",
            [.peer(.trusted), .head(.POST, "/", headers: [("Transfer-Encoding", "chunked")]), .routed, .body(7), .end],
            ["-", "gate POST /", "-", "body 7 chunked", "end chunked"]
        ),
    ]

    @Test(arguments: rows.indices)
    func eventsGiveTheirActions(_ index: Int) throws {
        let (name, events, expected) = Self.rows[index]
        let actions = try run(events)
        #expect(actions == expected, "\(name): \(actions)")
    }
}
