import Foundation
import WorkstationCore
import WorkstationIntegrations

/// Keeps the dispatcher's copy of the identity provider's signing keys current: `apply` fetches
/// `authentik.jwks_url` (RFC 7517 JSON Web Key Set; Authentik publishes one per OAuth2/OIDC provider at
/// `/application/o/<slug>/jwks/`) and writes it to `authentik.jwks_file` (root-owned, mode 0644, atomically) when the
/// keys changed. The dispatcher re-reads the file when it changes (docs/dispatch.md, identity `jwt`).
///
/// A fetch that fails, or a body that is not a key set, changes nothing: the keys written last stay in force and the
/// reason is reported (the dispatcher keeps verifying with them).
public enum JWKSRefresh {
    /// What one refresh did.
    public enum Outcome: Equatable, Sendable {
        case notConfigured
        case unchanged
        case written(path: String)
        case failed(String)
    }

    /// Fetches and, when different, writes the key set.
    /// - Parameters:
    ///   - settings: the `authentik:` settings (`jwks_url`, `jwks_file`, `timeout`).
    ///   - root: the host root the file is written under (and `ca_file` read from).
    ///   - environment: for `SSL_CERT_FILE`.
    /// - Returns: what happened; never throws (a failure is an outcome to report).
    public static func refresh(
        _ settings: AuthentikSettings?,
        root: HostRoot,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Outcome {
        guard let settings, let url = settings.jwksURL else { return .notConfigured }
        let response: HTTPTransport.Response
        let trust = TLSTrust.from(caFile: settings.caFile.map(root.path), environment: environment)
        if let problem = trust.problem { return .failed("authentik: \(problem)") }
        do {
            response = try HTTPTransport(timeout: settings.timeout, trust: trust).send(
                .GET,
                url,
                headers: [("Accept", "application/json")]
            )
        } catch {
            return .failed("\(error)")
        }
        guard response.status == 200 else {
            return .failed("GET \(url) answered \(response.status); check authentik.jwks_url")
        }
        if let problem = keySetProblem(response.body) { return .failed("\(url): \(problem)") }
        let path = root.path(settings.jwksFile)
        if FileManager.default.contents(atPath: path) == response.body { return .unchanged }
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            try writeFileAtomically(response.body, to: path, mode: 0o644)
        } catch {
            return .failed("cannot write \(path): \(error)")
        }
        return .written(path: settings.jwksFile)
    }

    /// Why `data` is not a usable JWK Set (RFC 7517 section 5: an object with a non-empty `keys` array of objects,
    /// each with `kty`), or nil.
    static func keySetProblem(_ data: Data) -> String? {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return "not a JSON object"
        }
        guard let keys = obj["keys"] as? [[String: Any]], !keys.isEmpty else {
            return "no \"keys\" array with keys in it"
        }
        guard keys.allSatisfy({ ($0["kty"] as? String)?.isEmpty == false }) else { return "a key without \"kty\"" }
        return nil
    }
}
