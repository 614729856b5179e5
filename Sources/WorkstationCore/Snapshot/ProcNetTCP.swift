import Foundation

/// One socket of the kernel's TCP tables `/proc/net/tcp` and `/proc/net/tcp6` (proc(5)), parsed (pure; the
/// reading is the caller's).
public struct ProcNetTCPRow: Sendable, Hashable {
    /// Local address in network byte order: 4 bytes (tcp) or 16 (tcp6).
    public var localAddress: [UInt8]
    public var localPort: Int
    public var remoteAddress: [UInt8]
    public var remotePort: Int
    /// The `st` column: `0A` LISTEN, `01` ESTABLISHED, `03` SYN_RECV...
    public var state: UInt8
    /// The `uid` column: the socket's owner.
    public var uid: Int

    /// 127.0.0.1 as the tables give it, and its IPv4-mapped IPv6 form (a dual-stack socket's view of it).
    public static let loopback4: [UInt8] = [127, 0, 0, 1]
    public static let loopbackMapped: [UInt8] = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 127, 0, 0, 1]

    /// Parses a whole table: after the header, per line `sl local_address rem_address st tx:rx tr:when retrnsmt uid
    /// ...`; an address is hex, each 32-bit word in host byte order (little-endian here), a port hex. Malformed lines
    /// are skipped.
    /// - Parameter v6: the table is `tcp6` (16-byte addresses).
    public static func parse(_ data: some Sequence<UInt8>, v6: Bool) -> [ProcNetTCPRow] {
        var out: [ProcNetTCPRow] = []
        for line in String(decoding: Array(data), as: UTF8.self).split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 7, let state = UInt8(f[3], radix: 16), let uid = Int(f[7]),
                let (local, localPort) = endpoint(f[1], v6: v6), let (remote, remotePort) = endpoint(f[2], v6: v6)
            else { continue }
            out.append(
                ProcNetTCPRow(
                    localAddress: local,
                    localPort: localPort,
                    remoteAddress: remote,
                    remotePort: remotePort,
                    state: state,
                    uid: uid
                )
            )
        }
        return out
    }

    /// `ADDRESS:PORT` in the tables' hex form.
    private static func endpoint(_ text: Substring, v6: Bool) -> ([UInt8], Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16), parts[0].count == (v6 ? 32 : 8) else { return nil }
        var bytes: [UInt8] = []
        var words = parts[0]
        while !words.isEmpty {
            guard let w = UInt32(words.prefix(8), radix: 16) else { return nil }
            bytes += [UInt8(w & 0xff), UInt8((w >> 8) & 0xff), UInt8((w >> 16) & 0xff), UInt8(w >> 24)]
            words = words.dropFirst(8)
        }
        return (bytes, port)
    }
}
