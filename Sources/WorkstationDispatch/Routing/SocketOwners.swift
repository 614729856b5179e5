import Foundation
import NIOConcurrencyHelpers
import NIOCore
import WorkstationCore

/// Who is at the other end of a socket, as the kernel says: the two checks that replace trust in addresses and
/// headers on a shared host (docs/dispatch.md, "Threat model").
enum SocketOwners {
    /// The uid of a unix stream socket's peer, from `SO_PEERCRED` (unix(7)): the credentials the peer had when it
    /// called connect(2). Nil for TCP channels or when the option cannot be read.
    static func peerUID(of channel: Channel) -> uid_t? {
        guard let provider = channel as? SocketOptionProvider else { return nil }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET),
            name: SocketOptionName(SO_PEERCRED)
        )
        // On the channel's own loop the option is read at once; the future is already complete.
        var result: uid_t?
        future.whenSuccess { result = $0.uid }
        return result
    }

    /// The uid that owns the socket which accepted a loopback TCP connection: the listener's owner while the
    /// connection waits in the accept queue, then the owner of the process that accepted it (socket(7) ownership as
    /// `sock_i_uid` reports it). Asked of the kernel with one `SOCK_DIAG_BY_FAMILY` request for exactly that
    /// connection (sock_diag(7), `inet_diag_req_v2` without `NLM_F_DUMP`), IPv4 first, then the IPv4-mapped IPv6 form a
    /// dual-stack listener accepts it as; where netlink is not available, from `procNet`'s `tcp` and `tcp6` tables
    /// (proc(5), the `uid` column).
    ///
    /// - Parameters:
    ///   - serverPort: the port the dispatcher connected to (on 127.0.0.1).
    ///   - clientPort: the dispatcher's own local port of that connection.
    ///   - procNet: the directory holding `tcp` and `tcp6`, for the fallback.
    /// - Returns: the owner's uid; nil when no such connection is listed yet (still being set up, or it closed).
    static func acceptorUID(serverPort: Int, clientPort: Int, procNet: String = "/proc/self/net") -> uid_t? {
        switch SockDiag.lookup(serverPort: serverPort, clientPort: clientPort) {
        case .found(let uid): return uid
        case .notYet: return nil
        case .unavailable:
            return acceptorUIDFromTables(serverPort: serverPort, clientPort: clientPort, procNet: procNet)
        }
    }

    /// What the check of an upstream connection's acceptor found (`checkAcceptor`).
    enum AcceptorCheck: Equatable {
        /// The socket that accepted the connection belongs to the routed person.
        case accepted
        /// The kernel lists no such connection yet (still being set up): ask again 1 ms later.
        case notYetListed
        /// Another owner, or none; the reason is for the log. The request gets 502 and no byte of it goes out.
        case refused(String)
    }

    /// Attempts at finding an acceptor not listed yet, 1 ms apart, before it counts as "no account found".
    static let acceptorAttempts = 20

    /// Checks that the socket that accepted the dispatcher's connection from `clientPort` to 127.0.0.1:`port`
    /// belongs to `osUser`, as both request paths do before sending a byte (docs/dispatch.md, "The checks on every
    /// request").
    /// - Parameters:
    ///   - clientPort: the connection's local port; nil when it could not be read.
    ///   - attempt: the attempts made before this one (0 at first).
    static func checkAcceptor(
        osUser: String,
        port: Int,
        clientPort: Int?,
        attempt: Int,
        accounts: AccountIDs,
        procNet: String
    ) -> AcceptorCheck {
        guard let expected = accounts.uid(of: osUser) else {
            return .refused("no account named \(osUser) for the listener on 127.0.0.1:\(port)")
        }
        let owner = clientPort.flatMap { acceptorUID(serverPort: port, clientPort: $0, procNet: procNet) }
        if owner == nil, attempt < acceptorAttempts { return .notYetListed }
        guard owner == expected else {
            return .refused(
                "the listener on 127.0.0.1:\(port) belongs to " + (owner.map { "uid \($0)" } ?? "no account found")
                    + ", not to \(osUser) (uid \(expected))"
            )
        }
        return .accepted
    }

    /// `acceptorUID` from the text tables `procNet/tcp` and `procNet/tcp6` (proc(5)). Costs a read of every socket
    /// on the host: the netlink lookup is the one used when it works.
    static func acceptorUIDFromTables(serverPort: Int, clientPort: Int, procNet: String) -> uid_t? {
        // A listener on [::] (dual stack) accepts the IPv4 connection as ::ffff:127.0.0.1, listed in tcp6.
        let tables: [(name: String, v6: Bool, address: [UInt8])] = [
            ("tcp", false, ProcNetTCPRow.loopback4), ("tcp6", true, ProcNetTCPRow.loopbackMapped),
        ]
        for table in tables {
            guard let data = readAll(procNet + "/" + table.name) else { continue }
            for row in ProcNetTCPRow.parse(data, v6: table.v6)
            where row.localPort == serverPort && row.remotePort == clientPort
                && row.localAddress == table.address && row.remoteAddress == table.address
            {
                return uid_t(row.uid)
            }
        }
        return nil
    }

    /// Reads a proc file to its end. proc files report size 0 and hand out a page or so per read(2), so the file
    /// is read until read(2) returns 0.
    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

/// One exact-socket query to the kernel's socket diagnostics (sock_diag(7), netlink family `NETLINK_SOCK_DIAG`).
enum SockDiag {
    enum Answer: Equatable {
        case found(uid_t)
        /// No such socket, or one still in `SYN_RECV` (a request socket reports uid 0): look again shortly.
        case notYet
        /// Netlink refused (no `AF_NETLINK` in the sandbox, no inet_diag): use the text tables.
        case unavailable
    }

    static let netlinkSockDiag: Int32 = 4  // NETLINK_SOCK_DIAG
    static let byFamily: UInt16 = 20  // SOCK_DIAG_BY_FAMILY
    static let nlmsgError: UInt16 = 2  // NLMSG_ERROR
    static let synRecv: UInt8 = 3  // TCP_SYN_RECV
    static let tcpListen: UInt8 = 10  // TCP_LISTEN

    /// The connection whose local end is 127.0.0.1:`serverPort` and remote end 127.0.0.1:`clientPort`.
    static func lookup(serverPort: Int, clientPort: Int) -> Answer {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkSockDiag)
        guard fd >= 0 else { return .unavailable }
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // inet_diag_sockid addresses are 16 bytes; an IPv4 one fills the first four.
        let loopback4 = ProcNetTCPRow.loopback4 + [UInt8](repeating: 0, count: 12)
        let mapped = ProcNetTCPRow.loopbackMapped
        var sawAnswer = false
        for (family, address) in [(UInt8(AF_INET), loopback4), (UInt8(AF_INET6), mapped)] {
            switch query(fd, family: family, address: address, serverPort: serverPort, clientPort: clientPort) {
            case .found(let uid): return .found(uid)
            case .notYet: sawAnswer = true
            case .unavailable: continue
            }
        }
        return sawAnswer ? .notYet : .unavailable
    }

    /// Sends one `inet_diag_req_v2` (72 bytes with its `nlmsghdr`) and reads the `inet_diag_msg` or the error.
    private static func query(_ fd: Int32, family: UInt8, address: [UInt8], serverPort: Int, clientPort: Int) -> Answer
    {
        var req = [UInt8](repeating: 0, count: 72)
        func put32(_ v: UInt32, at i: Int) {
            withUnsafeBytes(of: v) { for (k, b) in $0.enumerated() { req[i + k] = b } }
        }
        func put16(_ v: UInt16, at i: Int) {
            withUnsafeBytes(of: v) { for (k, b) in $0.enumerated() { req[i + k] = b } }
        }
        put32(72, at: 0)  // nlmsg_len
        put16(byFamily, at: 4)  // nlmsg_type
        put16(1, at: 6)  // nlmsg_flags: NLM_F_REQUEST (one socket, not a dump)
        put32(1, at: 8)  // nlmsg_seq
        req[16] = family  // sdiag_family
        req[17] = UInt8(IPPROTO_TCP)  // sdiag_protocol
        put32(0xFFFF_FFFF, at: 20)  // idiag_states: any
        put16(UInt16(serverPort).bigEndian, at: 24)  // id.idiag_sport: the accepting side's local port
        put16(UInt16(clientPort).bigEndian, at: 26)  // id.idiag_dport
        for k in 0..<16 {
            req[28 + k] = address[k]
            req[44 + k] = address[k]
        }  // idiag_src, idiag_dst
        put32(0xFFFF_FFFF, at: 64)  // idiag_cookie: INET_DIAG_NOCOOKIE
        put32(0xFFFF_FFFF, at: 68)
        // struct sockaddr_nl: nl_family, nl_pad, nl_pid 0 (the kernel), nl_groups 0.
        var kernel = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: UInt16(AF_NETLINK)) { for (k, b) in $0.enumerated() { kernel[k] = b } }
        let sent = kernel.withUnsafeBytes { a in
            req.withUnsafeBytes {
                sendto(
                    fd,
                    $0.baseAddress,
                    $0.count,
                    0,
                    a.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                    socklen_t(a.count)
                )
            }
        }
        guard sent == req.count else { return .unavailable }
        var reply = [UInt8](repeating: 0, count: 512)
        let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 20 else { return .unavailable }
        func get32(_ i: Int) -> UInt32 {
            reply.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: UInt32.self) }
        }
        let type = reply.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt16.self) }
        if type == nlmsgError {
            let code = Int32(bitPattern: get32(16))
            return code == -ENOENT ? .notYet : .unavailable
        }
        guard type == byFamily, n >= 16 + 72 else { return .unavailable }
        // The kernel falls back to the listener when the connection is not (or no longer) in its table: only the
        // connection itself, fully set up, answers the question.
        let peerPort = reply.withUnsafeBytes {
            UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 22, as: UInt16.self))
        }
        if peerPort != UInt16(clientPort) || reply[17] == synRecv || reply[17] == tcpListen { return .notYet }
        return .found(get32(16 + 64))  // inet_diag_msg.idiag_uid
    }
}

/// `struct ucred` of unix(7) (pid, uid, gid), laid out as the kernel writes it for `SO_PEERCRED`.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Account name -> uid, from the passwd database (getpwnam_r(3)), cached while `/etc/passwd` is unchanged.
/// A numeric name is taken as the uid itself.
final class AccountIDs: Sendable {
    private struct Cache {
        var stamp: timespec?
        var ids: [String: uid_t?] = [:]
    }
    private let cache = NIOLockedValueBox(Cache())
    private let passwdPath: String

    init(passwd: String = "/etc/passwd") { self.passwdPath = passwd }

    /// The uid of `name`, or nil when no account has that name.
    func uid(of name: String) -> uid_t? {
        if let n = uid_t(name) { return n }
        var st = stat()
        let mtime: timespec? = stat(passwdPath, &st) == 0 ? st.st_mtim : nil
        return cache.withLockedValue { c -> uid_t? in
            if c.stamp?.tv_sec != mtime?.tv_sec || c.stamp?.tv_nsec != mtime?.tv_nsec {
                c.ids.removeAll()
                c.stamp = mtime
            }
            if let hit = c.ids[name] { return hit }
            let found = Self.lookup(name)
            c.ids[name] = found
            return found
        }
    }

    private static func lookup(_ name: String) -> uid_t? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let rc = getpwnam_r(name, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return pwd.pw_uid
    }
}
