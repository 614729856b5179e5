import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An upstream connection on the fast path: TCP to `127.0.0.1:port` with `TCP_NODELAY`, checked before a byte
/// goes out to be accepted by a socket of the routed person's account (`SocketOwners.acceptorUID`, as the full
/// path's `UpstreamHandler` checks), reused for the client's next request to the same person and port, and kept in
/// its loop's pool when the client leaves. Responses are framed by `ResponseFramer` and handed to the client as
/// they came. Confined to its loop's thread.
final class FastUpstream {
    let user: String
    /// The account that must own the socket accepting this connection.
    let osUser: String
    let port: Int
    unowned(unsafe) let loop: FastLoop
    private(set) var fd: Int32 = -1
    var generation: UInt32 = 0
    /// The client this connection serves; nil while it waits in the pool.
    private var client: FastClient?
    /// Bytes waiting to be written to the upstream.
    private(set) var output = ByteBufferAllocator().buffer(capacity: 1024)
    private var framer = ResponseFramer()
    private var connecting = true
    private(set) var closed = false
    /// The peer shut down its side (`EPOLLRDHUP`, `EPOLLHUP`) or the socket failed: read on until `read` says so
    /// (a short read does not mean drained then, since the close's edge came with the last bytes').
    private var hungUp = false
    /// Edge-triggered: the socket may hold bytes not read yet.
    private var readable = false
    /// False once the upstream said `Connection: close`, or a request was left half sent.
    var reusable = true
    /// Request heads sent on this connection (more than one: a kept-alive connection).
    private(set) var requestsSent = 0
    var idleSince = NIODeadline.now()
    /// Attempts at finding the acceptor's owner (a connection still being set up is looked for again, 1 ms apart).
    private var ownerAttempts = 0

    init(loop: FastLoop, user: String, osUser: String, port: Int, client: FastClient) {
        self.loop = loop
        self.user = user
        self.osUser = osUser
        self.port = port
        self.client = client
    }

    var usable: Bool { !closed && reusable }

    /// Connected, reusable and between exchanges: may wait in the pool.
    var idleReusable: Bool {
        !closed && reusable && !connecting && !framer.awaitingResponse && !framer.hasUnread
            && output.readableBytes == 0
    }

    /// Opens the connection (non-blocking); the outcome reaches the client as `upstreamConnected` or
    /// `upstreamFailed`.
    func connect() {
        fd = socket(
            AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { return failLater("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        // TCP_NODELAY is a TCP-level option (tcp(7)).
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if r != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            _ = Glibc.close(fd)
            fd = -1
            return failLater("connect to 127.0.0.1:\(port): \(reason)")
        }
        // Writable (EPOLLOUT) once the connection is made or failed.
        guard let generation = loop.register(fd, .upstream(self)) else {
            _ = Glibc.close(fd)
            fd = -1
            return failLater("epoll_ctl: \(String(cString: strerror(errno)))")
        }
        self.generation = generation
    }

    private func failLater(_ reason: String) {
        closed = true
        connecting = false
        let c = client
        client = nil
        loop.schedule(in: .nanoseconds(0)) { [self] in c?.upstreamFailed(self, reason: reason) }
    }

    func handle(_ events: UInt32) {
        if closed { return }
        if connecting {
            if events & (Epoll.input | Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { readable = true }
            if events & (Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { hungUp = true }
            if events & (Epoll.output | Epoll.error | Epoll.hangUp) != 0 { connected() }
            return
        }
        guard let c = client else {
            // An idle upstream has nothing to say; anything it sends, or its close, makes it unusable.
            if events & (Epoll.input | Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 {
                loop.unpark(self)
                close()
            }
            return
        }
        if events & Epoll.output != 0, output.readableBytes > 0 {
            guard flush() else { return c.upstreamFailed(self) }
            if output.readableBytes == 0 { c.pump() }
        }
        if events & (Epoll.input | Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { readable = true }
        if events & (Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { hungUp = true }
        pump()
    }

    /// The connect finished: checks its error, then the acceptor's owner.
    private func connected() {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
        if error != 0 {
            return fail("connect to 127.0.0.1:\(port): \(String(cString: strerror(error)))")
        }
        verifyAcceptor()
    }

    /// Checks that the socket that accepted this connection belongs to `osUser` before a byte goes out; another
    /// owner (someone took the port while the person's instance was down) closes it, and the client gets 502.
    private func verifyAcceptor() {
        guard !closed else { return }
        let shared = loop.shared
        if shared.config.verifyUpstreamOwner {
            let check = SocketOwners.checkAcceptor(
                osUser: osUser,
                port: port,
                clientPort: ListeningSocket.ipAddress(of: fd, peer: false)?.port,
                attempt: ownerAttempts,
                accounts: shared.accounts,
                procNet: shared.config.procNet
            )
            switch check {
            case .accepted: break
            case .notYetListed:
                ownerAttempts += 1
                loop.schedule(in: .milliseconds(1)) { [self] in verifyAcceptor() }
                return
            case .refused(let reason): return refused(reason)
            }
        }
        connecting = false
        client?.upstreamConnected(self)
        if readable { pump() }
    }

    private func refused(_ reason: String) {
        loop.shared.logger.error(
            "upstream refused",
            metadata: ["user": .string(user), "port": "\(port)", "reason": .string(reason)]
        )
        fail(reason)
    }

    private func fail(_ reason: String) {
        connecting = false
        let c = client
        close()
        c?.upstreamFailed(self, reason: reason)
    }

    // MARK: requests

    func expectResponse(isHead: Bool) {
        requestsSent += 1
        framer.expectResponse(isHead: isHead, dechunk: false)
    }

    func sendHead(_ bytes: UnsafeRawBufferPointer, _ head: ScannedHead, user: String) {
        RequestHeadScanner.writeUpstreamHead(bytes, head, user: user, into: &output)
    }

    func send(_ body: ByteBuffer) { output.writeImmutableBuffer(body) }

    /// Writes what waits in `output`; false when the connection failed. Some may be left (the socket's buffer is
    /// full): its EPOLLOUT writes the rest.
    func flush() -> Bool {
        SocketIO.write(fd, from: &output) != .failed
    }

    // MARK: responses

    /// Reads and frames the response while the client's connection takes what is written to it; one write to
    /// the client per read.
    func pump() {
        guard let c = client else { return }
        while readable, !closed, client === c, c.output.readableBytes == 0 {
            loop.readBuffer.clear()
            switch SocketIO.read(fd, into: &loop.readBuffer, atLeast: 16 * 1024) {
            case .data(let short):
                if short && !hungUp { readable = false }
            case .empty:
                readable = false
                continue
            case .closed:
                peerClosed(c)
                return
            }
            framer.feed(loop.readBuffer)
            frame(c)
            if c.closed { return }
            _ = c.flush()
        }
        // The response ended: a request the client pipelined behind it goes next.
        if c.isIdle, c.output.readableBytes == 0 { c.pump() }
    }

    /// Hands the framed events to `c`, up to the response's end.
    private func frame(_ c: FastClient) {
        do {
            while let event = try framer.next() {
                switch event {
                case .interim: continue  // dropped, as the full path drops them (ClientHandler+Upstream.swift)
                case .head(let head):
                    guard c.responseHead(head, from: self) else { return }
                case .body(let body):
                    c.responseBody(body)
                case .end:
                    // Bytes after the end answer no request: this connection is closed, never lent again.
                    let unsolicited = framer.hasUnread
                    if unsolicited { reusable = false }
                    c.responseEnd(from: self)
                    if unsolicited {
                        framer.discard()
                        close()
                    }
                    return
                }
            }
        } catch {
            reusable = false
            framer.discard()
            c.upstreamBroken(self, (error as? UpstreamFramingError)?.description ?? "\(error)")
        }
    }

    /// The upstream closed: a body delimited by the close ends here; otherwise the client learns of the failure.
    private func peerClosed(_ c: FastClient) {
        if (try? framer.upstreamClosed()) == true { c.responseEnd(from: self) }
        _ = c.flush()
        close()
        c.upstreamFailed(self)
    }

    // MARK: the connection

    /// Hands this connection, idle, to `client` (taken from the pool).
    func attach(_ client: FastClient) {
        self.client = client
    }

    /// The client is done with this connection: to the pool when it is idle and reusable, else closed.
    func release() {
        client = nil
        if connecting || closed {
            close()
        } else {
            loop.park(self)
        }
    }

    func close() {
        if closed && fd < 0 { return }
        closed = true
        client = nil
        if fd >= 0 {
            loop.close(fd)
            fd = -1
        }
    }
}
