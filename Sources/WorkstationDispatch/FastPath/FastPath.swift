import CWorkstationLinux
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The dispatcher's request path: threads of its own on epoll(7) (`FastLoop`), one per core, sharing the
/// listening socket, serving the common request (a trusted front proxy's plain HTTP/1.1 request for a person on
/// this host) with four system calls and no NIO channel, and handing every other connection, at a request boundary
/// and with the bytes it read, to the full path: NIO's HTTP/1.1 decoder and `ClientHandler` on the NIO event loops
/// (WebSocket handshakes, chunked bodies, HTTP/1.0, tokens not yet verified, refusals, kubernetes-placed people).
/// Both paths decide with the same `Gate` and check upstream listeners the same way (docs/dispatch.md, "Request
/// path").
final class FastPath: Sendable {
    let intake: ConnectionIntake
    private let loops: [FastLoop]
    private let running = Mutex<Int>(0)
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - listenFD: the listening socket (bound by `ListeningSocket`, or passed by systemd), non-blocking.
    ///   - threads: event-loop threads: as many as the full path's NIO event loops (`System.coreCount` in service).
    /// - Throws: `DispatchError.bindFailed` when epoll cannot be set up.
    init(shared: DispatchShared, group: EventLoopGroup, listenFD: Int32, isTCP: Bool, threads: Int) throws {
        intake = ConnectionIntake(shared: shared, group: group, listenFD: listenFD, isTCP: isTCP)
        var loops: [FastLoop] = []
        for _ in 0..<max(1, threads) {
            loops.append(try FastLoop(intake: intake, shared: shared, listenFD: listenFD))
        }
        self.loops = loops
    }

    /// Starts one thread per loop.
    func start() {
        running.withLock { $0 = loops.count }
        for (i, loop) in loops.enumerated() {
            let finished = self.finished
            let thread = Thread {
                loop.run()
                finished.signal()
            }
            thread.name = "dispatch-\(i)"
            thread.start()
        }
    }

    /// Stops every loop (each closes the connections it holds), waits for their threads, and closes the listening
    /// socket; false when it was stopped before.
    @discardableResult
    func stop() -> Bool {
        let count = running.withLock { n in
            defer { n = -1 }
            return n
        }
        guard count >= 0 else { return false }
        for loop in loops { loop.stop() }
        for _ in 0..<count { finished.wait() }
        _ = Glibc.close(intake.listenFD)
        return true
    }

    /// Idle upstream connections held in the loops' pools.
    var idleUpstreamCount: Int { loops.reduce(0) { $0 + $1.idleCount.load(ordering: .relaxed) } }

    /// True when every loop turned within `nanoseconds` (each turns at least once a second): for the watchdog.
    func turned(within nanoseconds: UInt64) -> Bool {
        let now = NIODeadline.now().uptimeNanoseconds
        return loops.allSatisfy { now &- $0.lastTurn.load(ordering: .relaxed) < nanoseconds }
    }
}

/// What happens to a connection the fast path accepts, and to one it hands to the full path.
final class ConnectionIntake: Sendable {
    let shared: DispatchShared
    /// The NIO event loops of the full path.
    let group: EventLoopGroup
    let listenFD: Int32
    private let isTCP: Bool

    init(shared: DispatchShared, group: EventLoopGroup, listenFD: Int32, isTCP: Bool) {
        self.shared = shared
        self.group = group
        self.listenFD = listenFD
        self.isTCP = isTCP
    }

    /// A new connection: served on `loop` when its peer may send requests (`peer`: a front-proxy account by
    /// `SO_PEERCRED`; `jwt`: an address in `trusted_proxies` when that list is set), else handed to the full path,
    /// which refuses its first request with 403 and logs why.
    func accepted(_ fd: Int32, on loop: FastLoop) {
        if isTCP {
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard trusted(fd) else { return handoff(fd, preface: nil, reason: "untrusted peer") }
        let client = FastClient(fd: fd, loop: loop)
        guard let generation = loop.register(fd, .client(client)) else {
            return handoff(fd, preface: nil, reason: "epoll_ctl failed")
        }
        client.generation = generation
    }

    private func trusted(_ fd: Int32) -> Bool {
        switch shared.config.identity {
        case .peer:
            var uid: UInt32 = 0
            return cws_peer_uid(fd, &uid) == 0 && shared.frontProxyUIDs.contains(uid_t(uid))
        case .jwt:
            return shared.trusted.contains(ListeningSocket.ipAddress(of: fd, peer: true))
        }
    }

    /// Gives the connection `fd` to the full path: a NIO channel on it with the proxy's handlers, fed `preface`
    /// (the bytes the fast path read and did not use) before anything read from the socket.
    func handoff(_ fd: Int32, preface: ByteBuffer?, reason: String) {
        shared.metrics.countHandoff(reason)
        let shared = self.shared
        ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    if let preface { try ops.addHandler(PrefaceHandler(preface)) }
                    try ops.addDispatchClientHandlers(shared: shared, pool: shared.pools.pool(for: channel.eventLoop))
                }
            }
            .withConnectedSocket(fd)
            .whenFailure { error in
                shared.logger.error("handing a connection to the full path failed", metadata: ["error": "\(error)"])
            }
    }
}

/// Passes bytes read before the channel existed (by the fast path) to the handlers after it, once the channel is
/// active and before anything read from the socket; then leaves the pipeline.
final class PrefaceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var preface: ByteBuffer?

    init(_ preface: ByteBuffer) { self.preface = preface }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if let bytes = preface {
            preface = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
