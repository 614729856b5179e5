import Crypto
import Foundation
import JWTKit
import Logging
import NIOConcurrencyHelpers

/// A person as a verified token names them.
struct TokenIdentity: Sendable, Equatable {
    var user: String
    var groups: [String] {
        didSet { groupsField = groups.joined(separator: "|") }
    }
    /// The token's `exp` (seconds since 1970); the cached entry is dropped then.
    var expires: Double
    /// `groups` as an `X-authentik-groups` value says them (joined by `|`), made once per token, not per request.
    private(set) var groupsField: String

    init(user: String, groups: [String], expires: Double) {
        self.user = user
        self.groups = groups
        self.expires = expires
        self.groupsField = groups.joined(separator: "|")
    }
}

/// The claims of Authentik's `X-authentik-jwt` that the dispatcher reads: `exp`, `nbf`, `iss`, `aud`, and every
/// string or list-of-strings claim (the username and groups claims are named in settings).
struct AuthentikClaims: JWTPayload {
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    var strings: [String: String] = [:]
    var lists: [String: [String]] = [:]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        exp = try c.decode(ExpirationClaim.self, forKey: Key(stringValue: "exp"))
        nbf = try c.decodeIfPresent(NotBeforeClaim.self, forKey: Key(stringValue: "nbf"))
        iss = try c.decodeIfPresent(IssuerClaim.self, forKey: Key(stringValue: "iss"))
        aud = try c.decodeIfPresent(AudienceClaim.self, forKey: Key(stringValue: "aud"))
        for key in c.allKeys {
            if let s = try? c.decode(String.self, forKey: key) {
                strings[key.stringValue] = s
            } else if let l = try? c.decode([String].self, forKey: key) {
                lists[key.stringValue] = l
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(exp, forKey: Key(stringValue: "exp"))
        try c.encodeIfPresent(nbf, forKey: Key(stringValue: "nbf"))
        try c.encodeIfPresent(iss, forKey: Key(stringValue: "iss"))
        try c.encodeIfPresent(aud, forKey: Key(stringValue: "aud"))
        for (k, v) in strings where !["iss", "aud"].contains(k) { try c.encode(v, forKey: Key(stringValue: k)) }
        for (k, v) in lists where k != "aud" { try c.encode(v, forKey: Key(stringValue: k)) }
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}

/// Verifies `X-authentik-jwt` (RFC 7519 section 7.2): the signature against the provider's JWKS file (RFC 7517;
/// RS256/384/512, PS*, ES256/384/512, EdDSA as jwt-kit supports them, never `none`), then `exp`, `nbf`, `iss` and
/// `aud` as `JWTSettings` says. Verified tokens are cached by their SHA-256 digest until they expire, so a request
/// carrying a token seen before costs one hash and one dictionary lookup, no signature check.
///
/// The JWKS file is re-read when its inode, size or modification time change (`workstation apply` replaces it
/// atomically); the cache is emptied then, so a key removed from the JWKS stops working at once.
final class TokenVerifier: Sendable {
    private struct Keys {
        var collection: JWTKeyCollection?
        /// The file as last read (nil: missing); a change of inode, size or times means read it again.
        var stamp: FileStamp?
        var error: String?
    }
    private let settings: JWTSettings
    private let keys = NIOLockedValueBox(Keys())
    private let cache = NIOLockedValueBox([SHA256Digest: TokenIdentity]())
    /// Counts the times the cache was emptied (new keys): a `TokenMemo` of an earlier generation is not believed.
    private let generation = NIOLockedValueBox(0)
    private let logger: Logger
    /// Entries kept at most; expired ones are dropped first when it is reached.
    static let cacheLimit = 10_000

    init(settings: JWTSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The identity of a token verified before and not yet expired, or nil.
    func cached(_ token: String) -> TokenIdentity? {
        let digest = SHA256.hash(data: Data(token.utf8))
        let now = Date().timeIntervalSince1970
        return cache.withLockedValue { c in
            guard let hit = c[digest] else { return nil }
            if hit.expires <= now {
                c[digest] = nil
                return nil
            }
            return hit
        }
    }

    /// `cached(_:)`, first asking `memo`, the last token found on the same connection: the same bytes, from the
    /// same generation of keys and not expired, are answered without hashing the token again (a front proxy's
    /// connection carries one session's token again and again). `memo` is updated with each hit.
    func cached(_ token: String, memo: inout TokenMemo?) -> TokenIdentity? {
        let current = generation.withLockedValue { $0 }
        if let m = memo, m.generation == current, m.identity.expires > Date().timeIntervalSince1970,
            Self.sameBytes(m.token, token)
        {
            return m.identity
        }
        guard let hit = cached(token) else {
            memo = nil
            return nil
        }
        memo = TokenMemo(token: token, identity: hit, generation: current)
        return hit
    }

    /// `cached(_:memo:)` for a token still in a received buffer (the fast path): a memo of the same bytes answers
    /// without a `String` being made of the token.
    func cached(bytes token: UnsafeRawBufferPointer, memo: inout TokenMemo?) -> TokenIdentity? {
        if let m = memo, m.generation == generation.withLockedValue({ $0 }),
            m.identity.expires > Date().timeIntervalSince1970,
            HTTPField.bytes(
                of: m.token,
                { $0.count == token.count && memcmp($0.baseAddress!, token.baseAddress!, token.count) == 0 }
            )
        {
            return m.identity
        }
        return cached(String(decoding: token, as: UTF8.self), memo: &memo)
    }

    private static func sameBytes(_ a: String, _ b: String) -> Bool {
        HTTPField.bytes(of: a) { pa in
            HTTPField.bytes(of: b) { pb in
                guard pa.count == pb.count else { return false }
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return pa.count == 0 }
                return memcmp(x, y, pa.count) == 0
            }
        }
    }

    /// Re-reads the JWKS file when it changed (or was never read). Called on every cache miss and by the reload timer.
    func refresh() async {
        let path = settings.jwksFile
        let stamp = FileStamp.of(path)
        let changed = keys.withLockedValue { $0.stamp != stamp || ($0.collection == nil && $0.error == nil) }
        guard changed else { return }
        guard let data = FileManager.default.contents(atPath: path), let json = String(data: data, encoding: .utf8)
        else {
            let had = keys.withLockedValue { k -> Bool in
                k = Keys(collection: k.collection, stamp: stamp, error: "cannot read \(path)")
                return k.collection != nil
            }
            logger.error(
                had
                    ? "jwks unreadable; the keys read last stay in force"
                    : "jwks unreadable; no keys yet, every token is refused",
                metadata: ["file": .string(path)]
            )
            return
        }
        let collection = JWTKeyCollection()
        var failure: String?
        do { _ = try await collection.add(jwksJSON: json) } catch { failure = "\(error)" }
        if let error = failure {
            keys.withLockedValue { $0 = Keys(collection: $0.collection, stamp: stamp, error: error) }
            logger.error(
                "jwks invalid; the keys read last stay in force",
                metadata: ["file": .string(path), "error": .string(error)]
            )
            return
        }
        keys.withLockedValue { $0 = Keys(collection: collection, stamp: stamp, error: nil) }
        cache.withLockedValue { $0.removeAll() }
        generation.withLockedValue { $0 += 1 }
        logger.info("jwks loaded", metadata: ["file": .string(path)])
    }

    /// Verifies `token` and returns the identity it names, or why it is refused (for the log, never the client).
    func verify(_ token: String) async -> Result<TokenIdentity, TokenRefusal> {
        if let hit = cached(token) { return .success(hit) }
        await refresh()
        guard let collection = keys.withLockedValue({ $0.collection }) else {
            return .failure(TokenRefusal("no signing keys loaded from \(settings.jwksFile)"))
        }
        let claims: AuthentikClaims
        do {
            claims = try await collection.verify(token, as: AuthentikClaims.self, iteratingKeys: true)
        } catch {
            return .failure(TokenRefusal("token not verified: \(Self.reason(error))"))
        }
        guard claims.iss?.value == settings.issuer else {
            return .failure(TokenRefusal("token issuer is not \(settings.issuer)"))
        }
        guard let aud = claims.aud, (try? aud.verifyIntendedAudience(includes: settings.audience)) != nil else {
            return .failure(TokenRefusal("token audience does not include \(settings.audience)"))
        }
        guard let user = claims.strings[settings.usernameClaim], !user.isEmpty else {
            return .failure(TokenRefusal("token has no \(settings.usernameClaim) claim"))
        }
        let identity = TokenIdentity(
            user: user,
            groups: claims.lists[settings.groupsClaim] ?? [],
            expires: claims.exp.value.timeIntervalSince1970
        )
        let digest = SHA256.hash(data: Data(token.utf8))
        cache.withLockedValue { c in
            if c.count >= Self.cacheLimit {
                let now = Date().timeIntervalSince1970
                c = c.filter { $0.value.expires > now }
                if c.count >= Self.cacheLimit { c.removeAll() }
            }
            c[digest] = identity
        }
        return .success(identity)
    }

    /// Entries held (tests).
    var cachedCount: Int { cache.withLockedValue { $0.count } }

    private static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        return text.count > 200 ? String(text.prefix(200)) : text
    }
}

/// The last token a connection presented that was found verified, with its identity and the key generation it
/// was verified under (`TokenVerifier.cached(_:memo:)`).
struct TokenMemo: Sendable {
    var token: String
    var identity: TokenIdentity
    var generation: Int
}

/// Why a token was refused; logged, never sent to the client.
struct TokenRefusal: Error, Sendable, Equatable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
