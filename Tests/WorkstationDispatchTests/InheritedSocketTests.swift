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

/// Socket activation: the sockets systemd passes are matched to the listeners by the address each is bound to, and
/// a metrics port someone else holds does not keep the proxy from serving.
@Suite(.serialized) struct InheritedSocketTests {
    /// A listening unix socket bound to `path`, as systemd would pass it.
    static func listeningUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0, listen(fd, 16) == 0 else { throw CocoaError(.fileWriteUnknown) }
        return fd
    }

    @Test func inheritedSocketsAreMatchedByAddressAndAForeignOneIsRefused() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        defer { map.remove() }
        try map.write(["alice": alice.port])
        let proxyPath = map.dir + "/dispatch.sock"
        let proxyFD = try Self.listeningUnix(proxyPath)
        #expect(Systemd.boundAddress(of: proxyFD) == .unix(path: proxyPath))
        // Someone holds the metrics port: the proxy serves all the same.
        let squatter = try TestHTTPServer.byteSink()
        var config = DispatchConfig()
        config.listen = .unix(path: proxyPath)
        config.metricsListen = .tcp(host: "127.0.0.1", port: squatter.port)
        config.dispatchFile = map.path
        config.frontProxyUsers = ["root"]
        let inherited = try await DispatchServer.start(
            config: config,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            inherited: [proxyFD]
        )
        #expect(inherited.metricsAddress == nil, "the metrics port is taken; the proxy still serves")
        let r = try requestOnNewConnection(inherited, headers: identity("alice"))
        #expect(r.status == 200)
        await inherited.shutdown()
        squatter.stop()
        alice.stop()

        let other = try Self.listeningUnix(map.dir + "/other.sock")
        config.metricsListen = .tcp(host: "127.0.0.1", port: 0)
        await #expect(throws: DispatchError.self) {
            _ = try await DispatchServer.start(config: config, inherited: [other])
        }
        close(other)
    }
}
