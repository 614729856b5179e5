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

/// Settings that would let a local account act as another person are refused, located, and the dispatcher does not
/// start (no socket is created).
@Suite struct InsecureDeploymentTests {
    static let cases: [(name: String, yaml: String, message: String, line: Int)] = [
        (
            "loopback TCP listener with peer identity", "dispatch:\n  listen: 127.0.0.1:3773\n",
            "dispatch.listen must be unix:/PATH with identity: peer", 2
        ),
        (
            "any TCP listener with peer identity", "dispatch:\n  identity: peer\n  listen: \"[::]:3773\"\n",
            "dispatch.listen must be unix:/PATH with identity: peer", 3
        ),
        (
            "loopback in trusted_proxies", jwt(extra: "  trusted_proxies: [127.0.0.1]\n"),
            "'127.0.0.1' is this host's own address", 8
        ),
        (
            "IPv6 loopback in trusted_proxies", jwt(extra: "  trusted_proxies: [\"::1\"]\n"),
            "'::1' is this host's own address", 8
        ),
        (
            "this host's own address in trusted_proxies", jwt(extra: "  trusted_proxies: [10.0.0.9]\n"),
            "'10.0.0.9' is this host's own address", 8
        ),
        ("unix in trusted_proxies", jwt(extra: "  trusted_proxies: [unix]\n"), "'unix' is no longer an address", 8),
        (
            "trusted_proxies with peer identity", "dispatch:\n  trusted_proxies: [192.0.2.1]\n",
            "trusted_proxies applies to identity: jwt only", 2
        ),
        (
            "jwt identity without its section", "dispatch:\n  identity: jwt\n  listen: 0.0.0.0:3773\n",
            "identity: jwt needs a dispatch.jwt section", 2
        ),
        ("no front proxy account", "dispatch:\n  front_proxy_users: []\n", "front_proxy_users must name", 2),
        ("unknown identity mode", "dispatch:\n  identity: header\n", "dispatch.identity must be peer", 2),
    ]

    static func jwt(extra: String) -> String {
        "dispatch:\n  identity: jwt\n  listen: 0.0.0.0:3773\n  jwt:\n    jwks_file: /srv/jwks.json\n    issuer: https://auth.example.org/\n    audience: t3\n"
            + extra
    }

    @Test(arguments: cases.indices)
    func refusedWithItsLocation(_ index: Int) throws {
        let c = Self.cases[index]
        do {
            _ = try DispatchConfig.load(yaml: Data(c.yaml.utf8), file: "workstation.yaml", localAddresses: ["10.0.0.9"])
            Issue.record("\(c.name): expected a refusal")
        } catch let failure as ValidationFailure {
            #expect(failure.description.contains(c.message), "\(c.name): \(failure.description)")
            #expect(failure.diagnostics.first?.location.line == c.line, "\(c.name): \(failure.description)")
            #expect(failure.description.hasPrefix("workstation.yaml:"), "\(c.name)")
        }
    }

    @Test func aProgrammaticInsecureConfigDoesNotStart() async throws {
        let dir = try MapDir()
        defer { dir.remove() }
        var config = DispatchConfig()
        config.listen = .tcp(host: "127.0.0.1", port: 0)
        config.dispatchFile = dir.path
        await #expect(throws: DispatchError.self) { _ = try await DispatchServer.start(config: config) }
        config.listen = .unix(path: dir.dir + "/d.sock")
        config.frontProxyUsers = ["no-such-account-here"]
        await #expect(throws: DispatchError.self) { _ = try await DispatchServer.start(config: config) }
        #expect(!FileManager.default.fileExists(atPath: dir.dir + "/d.sock"), "nothing was created")
    }
}
