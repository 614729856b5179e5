import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The fast path's reads and writes on a non-blocking socket (read(2), write(2)), shared by its client and upstream
/// connections.
enum SocketIO {
    enum ReadOutcome: Equatable {
        /// Bytes were appended; `short` when fewer came than there was room for (with edge-triggered epoll: the
        /// socket is drained, unless the peer hung up, whose edge came with the last bytes).
        case data(short: Bool)
        /// Nothing to read now (`EAGAIN`).
        case empty
        /// The peer closed the connection (`read` returned 0), or the read failed.
        case closed
    }

    enum WriteOutcome: Equatable {
        /// Everything was written; the buffer is cleared.
        case written
        /// The socket's buffer is full (`EAGAIN`): the rest waits for `EPOLLOUT`.
        case blocked
        case failed
    }

    /// One `read` of `fd` appended to `buffer`, with room for at least `atLeast` bytes (retried on `EINTR`).
    static func read(_ fd: Int32, into buffer: inout ByteBuffer, atLeast: Int) -> ReadOutcome {
        var asked = 0
        var n = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: atLeast) { p -> Int in
            asked = p.count
            repeat { n = Glibc.read(fd, p.baseAddress, p.count) } while n < 0 && errno == EINTR
            return max(n, 0)
        }
        if n > 0 { return .data(short: n < asked) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .empty }
        return .closed
    }

    /// Writes what `buffer` holds to `fd` until it is empty (then clears it) or the socket's buffer is full.
    static func write(_ fd: Int32, from buffer: inout ByteBuffer) -> WriteOutcome {
        while buffer.readableBytes > 0 {
            let n = buffer.withUnsafeReadableBytes { p in Glibc.write(fd, p.baseAddress, p.count) }
            if n > 0 {
                buffer.moveReaderIndex(forwardBy: n)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? .blocked : .failed
        }
        buffer.clear()
        return .written
    }
}
