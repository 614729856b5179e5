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

/// `identity: jwt`: Authentik's signed token is the only proof; every forgery gets 403 and no upstream is contacted.
@Suite(.serialized) struct TokenIdentityTests {
    struct Claims: JWTPayload {
        var exp: ExpirationClaim
        var iss: IssuerClaim
        var aud: AudienceClaim
        var preferred_username: String
        var groups: [String]
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let issuer = "https://auth.example.org/application/o/t3/"

    /// A signing key and its JWKS (RFC 7517 section 4: kty, n, e, kid, alg).
    struct Signer {
        let keys = JWTKeyCollection()
        let jwks: String

        init(kid: String) async throws {
            let key = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
            await keys.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            let (n, e) = try key.publicKey.getKeyPrimitives()
            func b64url(_ d: Data) -> String {
                d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                    of: "/",
                    with: "_"
                )
                .replacingOccurrences(of: "=", with: "")
            }
            jwks =
                #"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"\#(kid)","n":"\#(b64url(n))","e":"\#(b64url(e))"}]}"#
        }

        func token(
            user: String = "alice",
            groups: [String] = ["Staff", "T3 Users"],
            issuer: String = issuer,
            audience: String = "t3",
            expires: Date = Date().addingTimeInterval(300)
        ) async throws -> String {
            try await keys.sign(
                Claims(
                    exp: .init(value: expires),
                    iss: .init(value: issuer),
                    aud: .init(value: [audience]),
                    preferred_username: user,
                    groups: groups
                ),
                kid: JWKIdentifier(string: "k1")
            )
        }
    }

    /// A dispatcher in `jwt` mode on an ephemeral 127.0.0.1 port, trusting `keys`' JWKS (written beside the map),
    /// issuer `issuer`, audience `t3`.
    static func startDispatcher(map: MapDir, keys: Signer) async throws -> DispatchServer {
        try keys.jwks.write(toFile: map.dir + "/jwks.json", atomically: true, encoding: .utf8)
        return try await WorkstationDispatchTests.startDispatcher(map: map) { c in
            c.identity = .jwt
            c.listen = .tcp(host: "127.0.0.1", port: 0)
            var j = JWTSettings()
            j.jwksFile = map.dir + "/jwks.json"
            j.issuer = issuer
            j.audience = "t3"
            c.jwt = j
        }
    }

    @Test func onlyAValidTokenIsBelievedAndItIsVerifiedOnce() async throws {
        let alice = try TestHTTPServer.echoUpstream(name: "alice-up")
        let map = try MapDir()
        try map.write(["alice": alice.port, "bob": alice.port])
        let signer = try await Signer(kid: "k1")
        let other = try await Signer(kid: "k1")  // the same key id, another key
        let server = try await Self.startDispatcher(map: map, keys: signer)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        func status(_ headers: [(String, String)]) async throws -> Int {
            var req = HTTPClientRequest(url: "http://127.0.0.1:\(server.localAddress!.port!)/")
            for (n, v) in headers { req.headers.add(name: n, value: v) }
            let resp = try await client.execute(req, timeout: .seconds(30))
            _ = try await resp.body.collect(upTo: 1 << 20)
            return Int(resp.status.code)
        }
        let good = try await signer.token()
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  // {"alg":"none","typ":"JWT"}
        let goodPayload = good.split(separator: ".")[1]
        let forgeries: [(String, [(String, String)])] = [
            ("no token, identity headers only", identity("alice")),
            ("wrong key", [(Gate.jwtHeader, try await other.token())]),
            ("expired", [(Gate.jwtHeader, try await signer.token(expires: Date().addingTimeInterval(-60)))]),
            ("alg none", [(Gate.jwtHeader, "\(header).\(goodPayload).")]),
            ("other issuer", [(Gate.jwtHeader, try await signer.token(issuer: "https://evil.example.org/"))]),
            ("other audience", [(Gate.jwtHeader, try await signer.token(audience: "grafana"))]),
            ("not in the gate group", [(Gate.jwtHeader, try await signer.token(groups: ["Staff"]))]),
            ("username header disagrees", [(Gate.jwtHeader, good), (Gate.usernameHeader, "bob")]),
            ("groups header disagrees", [(Gate.jwtHeader, good), (Gate.groupsHeader, "T3 Users|Admins")]),
            ("token repeated", [(Gate.jwtHeader, good), (Gate.jwtHeader, good)]),
            (
                "tampered payload",
                [
                    (
                        Gate.jwtHeader,
                        good.replacingOccurrences(of: String(goodPayload), with: String(goodPayload.dropLast(2)) + "xx")
                    )
                ]
            ),
        ]
        var outcomes: [String: Int] = [:]
        for (name, headers) in forgeries { outcomes[name] = try await status(headers) }
        // Validly signed: the good token (its header cases) and the one outside the gate group.
        let cachedBefore = server.verifier?.cachedCount
        let ok1 = try await status([(Gate.jwtHeader, good)])
        let ok2 = try await status([
            (Gate.jwtHeader, good), (Gate.usernameHeader, "alice"), (Gate.groupsHeader, "Staff|T3 Users"),
        ])
        let cached = server.verifier?.cachedCount
        try await client.shutdown()
        await server.shutdown()
        alice.stop()
        map.remove()
        for (name, _) in forgeries { #expect(outcomes[name] == 403, "\(name)") }
        #expect(ok1 == 200 && ok2 == 200)
        #expect(alice.requestCount == 2, "only the two valid requests reached an upstream")
        #expect(cachedBefore == 2)
        #expect(cached == 2, "the valid token was verified once and then answered from the cache")
    }
}
