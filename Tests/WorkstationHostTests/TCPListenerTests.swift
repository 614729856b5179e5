import Foundation
import Synchronization
import Testing
import WorkstationCore

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// `/proc/net/tcp{,6}` lines as the kernel writes them: each 32-bit word of the address in host (little-endian)
/// order, the port in hex.
enum ProcNet {
    static func hex(_ bytes: [UInt8]) -> String {
        var out = ""
        for i in stride(from: 0, to: bytes.count, by: 4) {
            var word: UInt32 = 0
            for j in 0..<4 { word |= UInt32(bytes[i + j]) << UInt32(8 * j) }
            out += String(format: "%08X", word)
        }
        return out
    }
    static let loopback4: [UInt8] = [127, 0, 0, 1]
    static let any4: [UInt8] = [0, 0, 0, 0]
    static let lan4: [UInt8] = [10, 0, 0, 5]
    static let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
    static let any6: [UInt8] = Array(repeating: 0, count: 16)
    static let mapped4: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff, 127, 0, 0, 1]

    /// One table: (address bytes, port, uid, state).
    static func table(_ rows: [(addr: [UInt8], port: Int, uid: Int, state: String)]) -> String {
        var s = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        for (i, r) in rows.enumerated() {
            let zero = String(repeating: "0", count: r.addr.count * 2)
            s +=
                String(format: "%4d: ", i)
                + "\(hex(r.addr)):\(String(format: "%04X", r.port)) \(zero):0000 \(r.state) 00000000:00000000 00:00000000 00000000  \(r.uid)        0 \(1000 + i) 1 0000000000000000 100 0 0 10 0\n"
        }
        return s
    }
}

@Suite struct TCPListenerTests {
    @Test(arguments: [
        (ProcNet.loopback4, false, "127.0.0.1", true),
        (ProcNet.any4, false, "0.0.0.0", false),
        (ProcNet.lan4, false, "10.0.0.5", false),
        (ProcNet.loopback6, true, "::1", true),
        (ProcNet.any6, true, "::", false),
        (ProcNet.mapped4, true, "::ffff:127.0.0.1", true),
    ])
    func parsesAddressesAndLoopback(addr: [UInt8], v6: Bool, text: String, loopback: Bool) {
        let data = Data(ProcNet.table([(addr, 3774, 1001, "0A"), (addr, 3775, 1002, "01")]).utf8)
        let l = TCPListener.parse(data, v6: v6)
        // ESTABLISHED (01) is no listener
        #expect(l == [TCPListener(address: text, port: 3774, uid: 1001, loopback: loopback)])
    }

    @Test func readsTheRealTablesOfThisMachine() throws {
        let l = try #require(ProcReader(root: .system).tcpListeners())
        #expect(l.allSatisfy { $0.port > 0 })
    }
}
