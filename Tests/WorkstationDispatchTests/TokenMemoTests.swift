import Foundation
import Logging
import Testing
import WorkstationTestSupport

@testable import WorkstationDispatch

/// The per-connection memo in front of the token cache: it answers only for the very bytes it was made from,
/// only while the identity has not expired, and never once the keys were read again (a key removed from the JWKS
/// stops working at once, memo or not).
@Suite(.serialized) struct TokenMemoTests {
    func verifier(_ dir: String) -> TokenVerifier {
        var settings = JWTSettings()
        settings.jwksFile = dir + "/jwks.json"
        settings.issuer = TokenIdentityTests.issuer
        settings.audience = "t3"
        var logger = Logger(label: "test.memo")
        logger.logLevel = .critical
        return TokenVerifier(settings: settings, logger: logger)
    }

    @Test func aTokenVerifiedOnceIsAnsweredFromTheMemoUntilTheKeysChange() async throws {
        let map = try MapDir()
        defer { map.remove() }
        let signer = try await TokenIdentityTests.Signer(kid: "k1")
        try signer.jwks.write(toFile: map.dir + "/jwks.json", atomically: true, encoding: .utf8)
        let v = verifier(map.dir)
        let good = try await signer.token()
        var memo: TokenMemo?
        #expect(v.cached(good, memo: &memo) == nil, "not verified yet")
        guard case .success(let identity) = await v.verify(good) else {
            Issue.record("the good token was refused")
            return
        }
        #expect(v.cached(good, memo: &memo) == identity)
        #expect(memo?.token == good)
        // Another token on the same connection is never answered by the memo.
        #expect(v.cached(good + "x", memo: &memo) == nil)
        #expect(memo == nil)
        #expect(v.cached(good, memo: &memo) == identity)
        // New keys: the cache is emptied, and the memo made before is not believed.
        let rotated = try await TokenIdentityTests.Signer(kid: "k1")
        try rotated.jwks.write(toFile: map.dir + "/jwks.json", atomically: true, encoding: .utf8)
        await v.refresh()
        #expect(v.cached(good, memo: &memo) == nil)
    }

    @Test func anExpiredIdentityIsNotAnsweredByTheMemo() throws {
        let map = try MapDir()
        defer { map.remove() }
        let v = verifier(map.dir)
        let fresh = TokenIdentity(user: "alice", groups: ["T3 Users"], expires: Date().timeIntervalSince1970 + 60)
        var memo: TokenMemo? = TokenMemo(token: "t", identity: fresh, generation: 0)
        #expect(v.cached("t", memo: &memo) == fresh)
        let stale = TokenIdentity(user: "alice", groups: ["T3 Users"], expires: Date().timeIntervalSince1970 - 1)
        memo = TokenMemo(token: "t", identity: stale, generation: 0)
        #expect(v.cached("t", memo: &memo) == nil)
    }
}
