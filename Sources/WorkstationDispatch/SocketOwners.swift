import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Who is at the other end of a socket, as the kernel says: the two checks that replace trust in addresses and
/// headers on a shared host (docs/dispatch.md, "Threat model").
enum SocketOwners {
    /// The uid of a unix stream socket's peer, from `SO_PEERCRED` (unix(7)): the credentials the peer had when it
    /// called connect(2). Nil for TCP channels or when the option cannot be read.
    static func peerUID(of channel: Channel) -> uid_t? {
        guard let provider = channel as? SocketOptionProvider else { return nil }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        // On the channel's own loop the option is read at once; the future is already complete.
        var result: uid_t?
        future.whenSuccess { result = $0.uid }
        return result
    }

    /// The uid that owns the socket which accepted a loopback TCP connection, read from `/proc/net/tcp` and
    /// `/proc/net/tcp6` (proc(5): the `uid` column; an accepted socket, and a connection still in the accept queue,
    /// carry the uid of the listening socket's owner).
    ///
    /// - Parameters:
    ///   - serverPort: the port the dispatcher connected to (on 127.0.0.1).
    ///   - clientPort: the dispatcher's own local port of that connection.
    ///   - procNet: the directory holding `tcp` and `tcp6` (`/proc/net`).
    /// - Returns: the owner's uid, or nil when no such connection is listed (not yet, or it closed).
    static func acceptorUID(serverPort: Int, clientPort: Int, procNet: String = "/proc/self/net") -> uid_t? {
        // Local address 127.0.0.1:serverPort, remote 127.0.0.1:clientPort, as the kernel prints them (address in
        // network byte order as a host-endian hex word, port in hex).
        let v4 = hex4(serverPort, "0100007F") + " " + hex4(clientPort, "0100007F")
        if let uid = scan(procNet + "/tcp", key: v4) { return uid }
        // A listener on [::] (dual stack) accepts the IPv4 connection as ::ffff:127.0.0.1.
        let mapped = "0000000000000000FFFF00000100007F"
        return scan(procNet + "/tcp6", key: hex4(serverPort, mapped) + " " + hex4(clientPort, mapped))
    }

    /// Reads a proc file to its end. proc files report size 0 and hand out a page or so per read(2), so the file
    /// is read until read(2) returns 0.
    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        out.reserveCapacity(64 << 10)
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    private static func hex4(_ port: Int, _ address: String) -> String {
        let h = String(port, radix: 16, uppercase: true)
        return address + ":" + String(repeating: "0", count: max(0, 4 - h.count)) + h
    }

    /// Finds the line whose local and remote address columns are `key` and returns its uid column (the 8th).
    private static func scan(_ path: String, key: String) -> uid_t? {
        guard let data = readAll(path) else { return nil }
        let keyBytes = Array(key.utf8)
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> uid_t? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != 0x0A { lineEnd += 1 }
                // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid ..."
                var i = lineStart
                while i < lineEnd, bytes[i] == 0x20 { i += 1 }
                while i < lineEnd, bytes[i] != 0x20 { i += 1 }  // "N:"
                i += 1
                if i + keyBytes.count <= lineEnd,
                    keyBytes.withUnsafeBufferPointer({ k in memcmp(k.baseAddress!, bytes.baseAddress! + i, k.count) == 0 })
                {
                    let fields = String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<lineEnd]), as: UTF8.self)
                        .split(separator: " ", omittingEmptySubsequences: true)
                    // local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
                    if fields.count > 6, let uid = uid_t(fields[6]) { return uid }
                    return nil
                }
                lineStart = lineEnd + 1
            }
            return nil
        }
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
