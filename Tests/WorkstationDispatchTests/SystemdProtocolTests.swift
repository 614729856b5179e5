import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WorkstationCore
import WorkstationTestSupport
import _CryptoExtras

@testable import WorkstationDispatch

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SystemdProtocolTests {
    @Test func journalLinesCarryTheSyslogPriority() {
        #expect(JournalLogHandler.priority(.critical) == 2)
        #expect(JournalLogHandler.priority(.error) == 3)
        #expect(JournalLogHandler.priority(.warning) == 4)
        #expect(JournalLogHandler.priority(.notice) == 5)
        #expect(JournalLogHandler.priority(.info) == 6)
        #expect(JournalLogHandler.priority(.debug) == 7)
        #expect(
            JournalLogHandler.escape("a\nb\u{1b}[31m\u{9b}") == "a\\u{a}b\\u{1b}[31m\\u{9b}",
            "a value cannot start a new line"
        )
    }

    @Test func notifyReachesTheNotifySocket() throws {
        let scratch = try TempRoot("notify")
        let path = scratch.file("/notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(rc == 0)
        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        #expect(Systemd.notify("READY=1"))
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
        #expect(n == 7 && String(decoding: buf[0..<7], as: UTF8.self) == "READY=1")
    }

    @Test func listenFDsOnlyForThisProcess() {
        setenv("LISTEN_PID", "1", 1)
        setenv("LISTEN_FDS", "1", 1)
        #expect(Systemd.listenFDs().isEmpty, "descriptors meant for another process are not taken")
        setenv("LISTEN_PID", String(getpid()), 1)
        setenv("LISTEN_FDS", "2", 1)
        #expect(Systemd.listenFDs() == [3, 4])
        #expect(getenv("LISTEN_FDS") == nil, "the variables are not passed on")
    }
}
