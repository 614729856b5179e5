import Foundation
import NIOConcurrencyHelpers
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

/// `apply` keeps the dispatcher's copy of the provider's signing keys: fetched from `authentik.jwks_url` on a loopback
/// stand-in, written root-owned 0644, left alone when unchanged, and never replaced by a body that is not a key set.
@Suite(.serialized) struct JWKSRefreshTests {
    static let keySet = #"{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXch","e":"AQAB"}]}"#

    @Test func applyWritesTheKeySetAndKeepsItWhenTheProviderMisbehaves() throws {
        let body = NIOLockedValueBox((200, Data(Self.keySet.utf8)))
        let provider = try TestHTTPServer { _ in body.withLockedValue { $0 } }
        let sandbox = try Sandbox()
        sandbox.authentikSection! += "\n  jwks_url: \(provider.url)/application/o/t3/jwks/\n"
        let first = try sandbox.apply()
        let path = sandbox.root.path("/var/lib/workstation/authentik-jwks.json")
        #expect(FileManager.default.contents(atPath: path) == Data(Self.keySet.utf8))
        #expect(sandbox.stat("/var/lib/workstation/authentik-jwks.json")?.mode == 0o644)
        #expect(first.plan.notes.contains { $0.contains("signing keys written") })
        #expect(provider.requests.last?.path == "/application/o/t3/jwks/")

        let second = try sandbox.apply()
        #expect(!second.plan.notes.contains { $0.contains("signing keys") }, "unchanged keys: nothing to report")

        for (status, bad) in [
            (200, "<html>login</html>"), (200, #"{"keys":[]}"#), (200, #"{"keys":[{"kid":"x"}]}"#), (500, Self.keySet),
        ] {
            body.withLockedValue { $0 = (status, Data(bad.utf8)) }
            let run = try sandbox.apply()
            #expect(
                FileManager.default.contents(atPath: path) == Data(Self.keySet.utf8),
                "\(status) \(bad): the last keys stay"
            )
            #expect(run.plan.notes.contains { $0.contains("signing keys not refreshed") }, "\(status) \(bad)")
        }
    }
}
