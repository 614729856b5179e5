import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import WorkstationCore

/// Which certificate authorities a client trusts for `https://` (TLS server authentication, RFC 5280 path
/// validation by BoringSSL in swift-nio-ssl).
public struct TLSTrust: Sendable, Hashable {
    /// A PEM bundle that replaces the system's trust store, as OpenSSL's `SSL_CERT_FILE` does; nil: the system's
    /// (`/etc/ssl/certs/ca-certificates.crt` on Debian).
    public var bundle: String?
    /// A PEM file of further CAs trusted besides the store, e.g. a private CA (`ca_file` of a service in settings).
    public var caFile: String?

    public init(bundle: String? = nil, caFile: String? = nil) {
        self.bundle = bundle
        self.caFile = caFile
    }

    /// The trust for one service: `caFile` (a path already under the host root) and `SSL_CERT_FILE` from
    /// `environment` when set and non-empty.
    public static func from(caFile: String?, environment: [String: String]) -> TLSTrust {
        TLSTrust(bundle: environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }, caFile: caFile)
    }

    /// Why a configured PEM file cannot be used (unreadable, or no certificate in it), or nil.
    public var problem: String? {
        for (what, path) in [("SSL_CERT_FILE", bundle), ("ca_file", caFile)] {
            guard let path else { continue }
            guard let certs = try? NIOSSLCertificate.fromPEMFile(path), !certs.isEmpty else {
                return "\(what) \(path) is not a readable PEM file of CA certificates; fix the path or the file"
            }
        }
        return nil
    }

    var tlsConfiguration: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let bundle { tls.trustRoots = .file(bundle) }
        if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
        return tls
    }
}

/// One HTTP exchange, synchronous: the pipeline (observe, plan, apply) is synchronous, so the clients block on
/// AsyncHTTPClient's `EventLoopFuture` (the work runs on NIO's event loops, never on the Swift concurrency pool).
/// Redirects are refused, so a bearer token is never sent to another host. The secrets it carries (the tokens in
/// its headers) are cut out of every error text it produces (`redact`), so a server that echoes a token, or a
/// library that quotes a header it refused, never puts it in the output.
public struct HTTPTransport: Sendable {
    /// One process-wide client per trust (redirects disallowed, 5 s connect timeout), never shut down (they live as
    /// long as the process).
    private static let clients = ClientCache()

    /// Per-request deadline, seconds.
    public var timeout: Int
    /// Certificate authorities trusted for https.
    public var trust: TLSTrust
    /// Values never to show (API tokens); each is replaced by `<redacted>` in error texts.
    let secrets: [Redacted]

    public init(timeout: Int, trust: TLSTrust = TLSTrust(), secrets: [Redacted] = []) {
        self.timeout = timeout
        self.trust = trust
        self.secrets = secrets.filter { !$0.bytes.isEmpty }
    }

    /// A response: status code and body bytes.
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
    }

    /// Sends one request and waits for the whole response.
    /// - Throws: `TransportError` (connection refused, timeout, bad URL, TLS), its reason redacted; an HTTP error
    ///   status is not thrown.
    public func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)],
        body: Data? = nil
    ) throws -> Response {
        do {
            let request = try HTTPClient.Request(
                url: url,
                method: method,
                headers: HTTPHeaders(headers),
                body: body.map { .bytes($0) }
            )
            let r = try Self.clients.client(for: trust).execute(
                request: request,
                deadline: .now() + .seconds(Int64(timeout))
            ).wait()
            var data = Data()
            if var buf = r.body, let bytes = buf.readBytes(length: buf.readableBytes) { data = Data(bytes) }
            return Response(status: Int(r.status.code), body: data)
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
            throw TransportError(url: redact(url), reason: "no answer within \(timeout) s")
        } catch {
            var reason = redact("\(error)")
            if reason.contains("certificate") || reason.contains("CERTIFICATE") || "\(type(of: error))".contains("SSL")
            {
                reason += "; if the service uses a private CA, set its ca_file in workstation.yaml (or SSL_CERT_FILE)"
            }
            throw TransportError(url: redact(url), reason: reason)
        }
    }

    /// `text` with every secret of this transport replaced by `<redacted>`, also where it appears escaped for a
    /// message (`printable`), then escaped itself.
    public func redact(_ text: String) -> String {
        var out = text
        for secret in secrets {
            let s = String(decoding: secret.bytes, as: UTF8.self)
            for form in [s, printable(s), s.trimmingCharacters(in: .whitespacesAndNewlines)] where !form.isEmpty {
                out = out.replacingOccurrences(of: form, with: "<redacted>")
            }
        }
        return printable(out)
    }

    /// A short, printable excerpt of a JSON error body: `detail`, `non_field_errors` (Authentik) or `errors`
    /// (Vault); secrets are cut out before it is shortened, so no part of one survives at the cut.
    public func detail(_ body: Data) -> String? {
        guard let text = errorDetail(body) else { return nil }
        let safe = redact(text)
        return safe.count > 300 ? String(safe.prefix(300)) + "..." : safe
    }
}

/// The clients by trust, made on first use.
private final class ClientCache: @unchecked Sendable {
    private let lock = NSLock()
    private var clients: [TLSTrust: HTTPClient] = [:]

    func client(for trust: TLSTrust) -> HTTPClient {
        lock.withLock {
            if let c = clients[trust] { return c }
            let c = HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: HTTPClient.Configuration(
                    tlsConfiguration: trust.tlsConfiguration,
                    redirectConfiguration: .disallow,
                    timeout: .init(connect: .seconds(5))
                )
            )
            clients[trust] = c
            return c
        }
    }
}

/// The service could not be reached (connection refused, timeout, TLS). Never carries a token.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var reason: String
    public var description: String {
        "cannot reach \(url): \(reason); check the URL in workstation.yaml and that the service is up"
    }
}

/// The messages of a JSON error body: `detail`, `non_field_errors` (Authentik) or `errors` (Vault), joined; nil
/// when there are none. Unredacted and unshortened: callers use `HTTPTransport.detail(_:)`.
func errorDetail(_ body: Data) -> String? {
    guard let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
    var parts: [String] = []
    if let d = obj["detail"] as? String { parts.append(d) }
    if let n = obj["non_field_errors"] as? [String] { parts += n }
    if let e = obj["errors"] as? [String] { parts += e }
    if parts.isEmpty {
        for (k, v) in obj.sorted(by: { $0.key < $1.key }) where k != "code" {
            if let list = v as? [String] { parts.append("\(k): \(list.joined(separator: " "))") }
        }
    }
    return parts.isEmpty ? nil : parts.joined(separator: "; ")
}
