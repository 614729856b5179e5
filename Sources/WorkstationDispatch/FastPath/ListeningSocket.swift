import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The proxy's listening socket, bound here (`listen`) or passed by systemd, made non-blocking for the fast path.
enum ListeningSocket {
    /// Backlog of not yet accepted connections (listen(2); the kernel caps it at `net.core.somaxconn`).
    static let backlog: Int32 = 1024

    /// Binds and listens on `address`: a TCP address with `SO_REUSEADDR`, or a unix socket path, where a socket
    /// file left by an earlier run is removed first (anything else at that path is an error).
    /// - Throws: `DispatchError.bindFailed` naming the address and the system's reason.
    static func bind(_ address: ListenAddress) throws -> Int32 {
        let socketAddress: SocketAddress
        do {
            switch address {
            case .tcp(let host, let port): socketAddress = try SocketAddress.makeAddressResolvingHost(host, port: port)
            case .unix(let path):
                var st = stat()
                if lstat(path, &st) == 0 {
                    guard st.st_mode & S_IFMT == S_IFSOCK else {
                        throw DispatchError.bindFailed(
                            address: address.description,
                            underlying: "\(path) exists and is not a socket"
                        )
                    }
                    unlink(path)
                }
                socketAddress = try SocketAddress(unixDomainSocketPath: path)
            }
        } catch let error as DispatchError {
            throw error
        } catch {
            throw DispatchError.bindFailed(address: address.description, underlying: "\(error)")
        }
        let family = Int32(socketAddress.protocol.rawValue)
        let fd = socket(
            family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { throw failure(address) }
        if case .tcp = address {
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let bound = socketAddress.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard bound == 0, listen(fd, backlog) == 0 else {
            let error = failure(address)
            _ = Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Makes a socket passed by systemd non-blocking (the fast path's threads accept without waiting).
    static func adopt(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// The address `fd` is bound to, as NIO names it (the real port when `listen` asked for port 0).
    static func localAddress(_ fd: Int32, _ address: ListenAddress) -> SocketAddress? {
        if case .unix(let path) = address { return try? SocketAddress(unixDomainSocketPath: path) }
        return ipAddress(of: fd, peer: false)
    }

    /// The IPv4 or IPv6 address of `fd` (`getsockname(2)`) or of its peer (`getpeername(2)`); nil for other
    /// families.
    static func ipAddress(of fd: Int32, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                (peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)) == 0
            }
        }
        guard ok else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let port: UInt16
        switch Int32(storage.ss_family) {
        case AF_INET:
            var a = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            }
            guard inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
            port = a.sin_port
        case AF_INET6:
            var a = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
            }
            guard inet_ntop(AF_INET6, &a.sin6_addr, &text, socklen_t(text.count)) != nil else { return nil }
            port = a.sin6_port
        default:
            return nil
        }
        return try? SocketAddress(ipAddress: String(cString: text), port: Int(UInt16(bigEndian: port)))
    }

    private static func failure(_ address: ListenAddress) -> DispatchError {
        DispatchError.bindFailed(address: address.description, underlying: String(cString: strerror(errno)))
    }
}
