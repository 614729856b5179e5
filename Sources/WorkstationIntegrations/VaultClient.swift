import Foundation
import NIOHTTP1
import WorkstationCore

/// One KV version 2 secret as read: the data (values as text) and its version metadata.
public struct KVSecret: Sendable {
    public var data: [String: Redacted]
    public var version: Int
    public init(data: [String: Redacted], version: Int) {
        self.data = data
        self.version = version
    }
}

/// The Vault operations workstation needs (KV version 2 HTTP API).
public protocol VaultClient: Sendable {
    /// `GET /v1/MOUNT/data/PATH` with `X-Vault-Token` (and `X-Vault-Namespace` when set): the latest version.
    /// - Throws: `VaultError` (403, 404, soft-deleted or destroyed version) or `TransportError`. Idempotent (reads).
    func readKV(mount: String, path: String) throws -> KVSecret
}

extension VaultClient {
    /// One key of a KV v2 secret.
    /// - Throws: `VaultError.missingKey` naming the keys present (never their values), or what `readKV` throws.
    public func readSecret(mount: String, path: String, key: String) throws -> Redacted {
        let s = try readKV(mount: mount, path: path)
        guard let v = s.data[key] else {
            throw VaultError.missingKey(
                ref: "\(mount)/\(path)",
                key: key,
                present: s.data.keys.sorted().map { printable($0) }
            )
        }
        return v
    }
}

/// Why a Vault read failed. Never carries a token or a secret value.
public enum VaultError: Error, CustomStringConvertible, Sendable, Equatable {
    case permissionDenied(ref: String, detail: String?)
    case notFound(ref: String)
    case deleted(ref: String, version: Int, at: String)
    case destroyed(ref: String, version: Int)
    case missingKey(ref: String, key: String, present: [String])
    case status(ref: String, code: Int, detail: String?)
    case badResponse(ref: String, reason: String)
    case noToken(String)

    public var description: String {
        switch self {
        case .permissionDenied(let ref, let d):
            "reading \(ref) was refused (403)\(d.map { ": \($0)" } ?? ""); check the token and its policy (it needs read on the KV data path)"
        case .notFound(let ref): "\(ref) does not exist (404) or the token cannot see it; check the mount and path"
        case .deleted(let ref, let v, let at):
            "the latest version (\(v)) of \(ref) was deleted at \(at); undelete it (vault kv undelete -versions=\(v)) or write a new version"
        case .destroyed(let ref, let v): "the latest version (\(v)) of \(ref) was destroyed; write a new version"
        case .missingKey(let ref, let key, let present):
            "\(ref) has no key '\(key)' (keys: \(present.joined(separator: ", ")))"
        case .status(let ref, let code, let d): "reading \(ref) failed with HTTP \(code)\(d.map { ": \($0)" } ?? "")"
        case .badResponse(let ref, let reason): "reading \(ref): unexpected answer from Vault (\(reason))"
        case .noToken(let how): "no Vault token: \(how)"
        }
    }
}

/// The live client on AsyncHTTPClient.
public struct LiveVaultClient: VaultClient {
    let base: String
    let token: Redacted
    let namespace: String?
    let http: HTTPTransport

    /// - Parameters: `VAULT_ADDR` without trailing slash, the token, `X-Vault-Namespace`, the per-request deadline
    ///   in seconds, and the CAs trusted for https (`vault.ca_file`, `SSL_CERT_FILE`).
    public init(baseURL: String, token: String, namespace: String?, timeout: Int = 10, trust: TLSTrust = TLSTrust()) {
        self.base = baseURL
        self.token = Redacted(Data(token.utf8))
        self.namespace = namespace
        self.http = HTTPTransport(timeout: timeout, trust: trust, secrets: [self.token])
    }

    public func readKV(mount: String, path: String) throws -> KVSecret {
        let ref = "\(mount)/\(path)"
        func enc(_ s: String) -> String {
            s.split(separator: "/").map {
                $0.addingPercentEncoding(
                    withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))
                ) ?? String($0)
            }.joined(separator: "/")
        }
        var headers = [("X-Vault-Token", String(decoding: token.bytes, as: UTF8.self)), ("Accept", "application/json")]
        if let namespace { headers.append(("X-Vault-Namespace", namespace)) }
        let r = try http.send(.GET, "\(base)/v1/\(enc(mount))/data/\(enc(path))", headers: headers)
        let obj = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any]
        let data = obj?["data"] as? [String: Any]
        let meta = data?["metadata"] as? [String: Any]
        let version = (meta?["version"] as? NSNumber)?.intValue ?? 0
        // Text from the server reaches messages: redacted like every error detail.
        let deletion = http.redact(meta?["deletion_time"] as? String ?? "")
        let destroyed = (meta?["destroyed"] as? Bool) ?? false
        switch r.status {
        case 200:
            if destroyed { throw VaultError.destroyed(ref: ref, version: version) }
            if !deletion.isEmpty { throw VaultError.deleted(ref: ref, version: version, at: deletion) }
            guard let kv = data?["data"] as? [String: Any] else {
                throw VaultError.badResponse(ref: ref, reason: "no data.data")
            }
            var out: [String: Redacted] = [:]
            for (k, v) in kv {
                if let s = v as? String {
                    out[k] = Redacted(Data(s.utf8))
                } else if let d = try? JSONSerialization.data(
                    withJSONObject: v,
                    options: [.fragmentsAllowed, .sortedKeys]
                ) {
                    out[k] = Redacted(d)
                }
            }
            return KVSecret(data: out, version: version)
        case 404:
            if destroyed { throw VaultError.destroyed(ref: ref, version: version) }
            if !deletion.isEmpty { throw VaultError.deleted(ref: ref, version: version, at: deletion) }
            throw VaultError.notFound(ref: ref)
        case 401, 403:
            throw VaultError.permissionDenied(ref: ref, detail: http.detail(r.body))
        default:
            throw VaultError.status(ref: ref, code: r.status, detail: http.detail(r.body))
        }
    }
}
