import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// One request as the test server received it.
public struct TestRequest: Sendable {
    public var method: String
    /// The request target as sent (`/api/v3/core/users/?page=2`).
    public var uri: String
    /// The target's path, percent-decoded, without the query.
    public var path: String
    /// The query's items (the last of a repeated name wins).
    public var query: [String: String]
    /// Every header line in order, names as sent.
    public var headerFields: [HeaderField]
    /// Headers by lowercased name (the last of a repeated name wins).
    public var headers: [String: String]
    public var body: Data

    public struct HeaderField: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// Every value of the header `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        headerFields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
}

/// What the test server answers to one request.
public struct TestResponse: Sendable {
    public var status: Int
    /// Header lines to send; `Content-Length` (the body's full size) is always added.
    public var headers: [(String, String)]
    public var body: Data
    /// Send only this many bytes of the body, then hold the connection open without finishing the response (a
    /// server that stalls halfway, for killing a client mid-transfer).
    public var stallAfter: Int?
    /// Close the connection once the response is written.
    public var close: Bool

    public init(
        status: Int = 200,
        headers: [(String, String)] = [],
        body: Data = Data(),
        stallAfter: Int? = nil,
        close: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.stallAfter = stallAfter
        self.close = close
    }

    /// A response with a UTF-8 text body.
    public static func text(_ body: String, status: Int = 200, headers: [(String, String)] = []) -> TestResponse {
        TestResponse(status: status, headers: headers, body: Data(body.utf8))
    }
}

/// The one test server: a real server on `127.0.0.1` with an ephemeral port, on an event loop thread of its own
/// (never the Swift concurrency pool, so a test that blocks on a client cannot starve it), stopped when the value
/// goes away. As an HTTP/1.1 server (swift-nio's `configureHTTPServerPipeline`, keep-alive, optionally TLS) it
/// answers each request with what `respond` returns and records it; it can also echo WebSocket frames (RFC 6455)
/// and answer only the first request of each connection. `rawReplies` and `byteSink` make the same server speak
/// raw bytes instead, for what a real HTTP server would never send. It counts connections, closed connections,
/// request heads, requests and bytes received in every mode.
public final class TestHTTPServer: @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    private let state: State
    private let stopped = NIOLockedValueBox(false)

    /// The bound port on 127.0.0.1.
    public let port: Int
    /// True when the server speaks TLS (`https://`).
    public let isTLS: Bool

    /// Starts an HTTP/1.1 server.
    /// - Parameters:
    ///   - tls: serve `https://` with this context (a certificate made by the test); nil: plain HTTP.
    ///   - webSocketEcho: accept a WebSocket upgrade on any path and echo each text or binary frame back.
    ///   - oneRequestPerConnection: answer the first request of a connection (keep-alive), and close the connection
    ///     without answering when a second request head arrives on it: a server whose keep-alive timeout fires just
    ///     as a request comes in.
    ///   - respond: the answer to each complete request; called on the server's event loop.
    /// - Throws: when 127.0.0.1 cannot be bound.
    public convenience init(
        tls: NIOSSLContext? = nil,
        webSocketEcho: Bool = false,
        oneRequestPerConnection: Bool = false,
        respond: @escaping @Sendable (TestRequest) -> TestResponse
    ) throws {
        let state = State(respond: respond)
        try self.init(state: state, isTLS: tls != nil) { ch in
            let secured: EventLoopFuture<Void> =
                tls.map { ctx in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: ctx))
                    }
                } ?? ch.eventLoop.makeSucceededVoidFuture()
            return secured.flatMap {
                ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    let http = HTTPHandler(state: state, oneRequestPerConnection: oneRequestPerConnection)
                    if webSocketEcho {
                        let upgrader = NIOWebSocketServerUpgrader(
                            shouldUpgrade: { ch, _ in ch.eventLoop.makeSucceededFuture([:]) },
                            upgradePipelineHandler: { ch, _ in
                                ch.eventLoop.makeCompletedFuture {
                                    let ops = ch.pipeline.syncOperations
                                    ops.removeHandler(try ops.handler(type: HTTPHandler.self), promise: nil)
                                    try ops.addHandler(WebSocketEcho())
                                }
                            }
                        )
                        try ops.configureHTTPServerPipeline(
                            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                        )
                    } else {
                        try ops.configureHTTPServerPipeline()
                    }
                    try ops.addHandler(http)
                }
            }
        }
    }

    /// A server that answers each request head (read up to its empty line; bodies are not expected) with `reply`
    /// as raw bytes.
    /// - Parameters:
    ///   - closeAfter: close the connection after each reply.
    ///   - streamAfter: after each reply, keep writing 64 KiB blocks nobody asked for until the connection closes
    ///     (a hostile upstream trying to fill a proxy's memory).
    public static func rawReplies(
        _ reply: String,
        closeAfter: Bool = false,
        streamAfter: Bool = false
    ) throws
        -> TestHTTPServer
    {
        let state = State(respond: { _ in TestResponse(status: 500) })
        return try TestHTTPServer(state: state, isTLS: false) { ch in
            ch.eventLoop.makeCompletedFuture {
                try ch.pipeline.syncOperations.addHandler(
                    RawReplyHandler(state: state, reply: reply, closeAfter: closeAfter, streamAfter: streamAfter)
                )
            }
        }
    }

    /// A listener that reads and counts every byte it receives and never answers (a squatter on someone's port).
    public static func byteSink() throws -> TestHTTPServer {
        let state = State(respond: { _ in TestResponse(status: 500) })
        return try TestHTTPServer(state: state, isTLS: false) { ch in
            ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(SinkHandler(state: state)) }
        }
    }

    private init(
        state: State,
        isTLS: Bool,
        pipeline: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) throws {
        self.state = state
        self.isTLS = isTLS
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                state.counters.withLockedValue { $0.connections += 1 }
                ch.closeFuture.whenComplete { _ in state.counters.withLockedValue { $0.closedConnections += 1 } }
                return pipeline(ch)
            }
        do {
            channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        port = channel.localAddress!.port!
    }

    deinit { stop() }

    /// Stops listening, closes every connection and ends the event loop thread; the port is free afterwards.
    /// Stopping twice is harmless.
    public func stop() {
        let first = stopped.withLockedValue { was in
            defer { was = true }
            return !was
        }
        guard first else { return }
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    public var url: String { "\(isTLS ? "https" : "http")://127.0.0.1:\(port)" }
    /// Every complete request answered so far, in order.
    public var requests: [TestRequest] { state.counters.withLockedValue { $0.requests } }
    /// Requests that could change something on the server (anything but GET).
    public var mutating: [TestRequest] { requests.filter { $0.method != "GET" } }
    /// Complete requests so far.
    public var requestCount: Int { state.counters.withLockedValue { $0.requests.count } }
    /// Request heads received so far, answered or not.
    public var requestHeads: Int { state.counters.withLockedValue { $0.heads } }
    /// TCP connections accepted so far.
    public var connectionCount: Int { state.counters.withLockedValue { $0.connections } }
    /// Connections that have closed (by either side).
    public var closedConnections: Int { state.counters.withLockedValue { $0.closedConnections } }
    /// Bytes received (`byteSink` only).
    public var bytesReceived: Int { state.counters.withLockedValue { $0.bytes } }
    /// Responses that stalled (`TestResponse.stallAfter`) once their first part was on the wire.
    public var stalledResponses: Int { state.counters.withLockedValue { $0.stalled } }

    // MARK: - Handlers

    fileprivate struct Counters {
        var requests: [TestRequest] = []
        var heads = 0
        var connections = 0
        var closedConnections = 0
        var bytes = 0
        var stalled = 0
    }

    fileprivate final class State: Sendable {
        let counters = NIOLockedValueBox(Counters())
        let respond: @Sendable (TestRequest) -> TestResponse
        init(respond: @escaping @Sendable (TestRequest) -> TestResponse) { self.respond = respond }
    }

    private final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: State
        let oneRequestPerConnection: Bool
        var head: HTTPRequestHead?
        var body = Data()
        var answered = false
        init(state: State, oneRequestPerConnection: Bool) {
            self.state = state
            self.oneRequestPerConnection = oneRequestPerConnection
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                state.counters.withLockedValue { $0.heads += 1 }
                if oneRequestPerConnection && answered {
                    context.close(promise: nil)
                    return
                }
                head = h
                body = Data()
            case .body(var buf):
                body.append(contentsOf: buf.readBytes(length: buf.readableBytes) ?? [])
            case .end:
                guard let head else { return }
                self.head = nil
                answered = true
                let request = Self.request(head, body)
                state.counters.withLockedValue { $0.requests.append(request) }
                write(state.respond(request), version: head.version, context: context)
            }
        }

        static func request(_ head: HTTPRequestHead, _ body: Data) -> TestRequest {
            let comps = URLComponents(string: head.uri)
            var query: [String: String] = [:]
            for item in comps?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            var headers: [String: String] = [:]
            for (k, v) in head.headers { headers[k.lowercased()] = v }
            return TestRequest(
                method: head.method.rawValue,
                uri: head.uri,
                path: comps?.percentEncodedPath.removingPercentEncoding ?? head.uri,
                query: query,
                headerFields: head.headers.map { TestRequest.HeaderField(name: $0.name, value: $0.value) },
                headers: headers,
                body: body
            )
        }

        func write(_ r: TestResponse, version: HTTPVersion, context: ChannelHandlerContext) {
            var h = HTTPHeaders()
            for (n, v) in r.headers { h.add(name: n, value: v) }
            h.replaceOrAdd(name: "Content-Length", value: String(r.body.count))
            let status = HTTPResponseStatus(statusCode: r.status)
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: h))),
                promise: nil
            )
            if let cut = r.stallAfter {
                let part = r.body.prefix(cut)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: part)))))
                    .whenComplete { [state] _ in state.counters.withLockedValue { $0.stalled += 1 } }
                return
            }
            if !r.body.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: r.body)))), promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if r.close { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        }
    }

    private final class WebSocketEcho: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text, .binary:
                let out = WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            case .connectionClose:
                context.close(promise: nil)
            default: break
            }
        }
    }

    private final class RawReplyHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let state: State
        let reply: String
        let closeAfter: Bool
        let streamAfter: Bool
        var seen: [UInt8] = []
        init(state: State, reply: String, closeAfter: Bool, streamAfter: Bool) {
            self.state = state
            self.reply = reply
            self.closeAfter = closeAfter
            self.streamAfter = streamAfter
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += unwrapInboundIn(data).readableBytesView
            while let end = seen.firstRange(of: [13, 10, 13, 10]) {
                seen.removeSubrange(..<end.upperBound)
                state.counters.withLockedValue { $0.heads += 1 }
                let done = context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: reply)))
                if closeAfter { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
                if streamAfter { stream(context) }
            }
        }
        private func stream(_ context: ChannelHandlerContext) {
            guard context.channel.isActive else { return }
            let block = context.channel.allocator.buffer(repeating: UInt8(ascii: "A"), count: 64 * 1024)
            context.writeAndFlush(wrapOutboundOut(block)).assumeIsolated().whenComplete { result in
                if case .success = result { self.stream(context) }
            }
        }
    }

    private final class SinkHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let state: State
        init(state: State) { self.state = state }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let n = unwrapInboundIn(data).readableBytes
            state.counters.withLockedValue { $0.bytes += n }
        }
    }
}
