import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WorkstationCore

/// One HTTP exchange, synchronous: the pipeline (observe, plan, apply) is synchronous, so the clients block on
/// AsyncHTTPClient's `EventLoopFuture` (the work runs on NIO's event loops, never on the Swift concurrency pool).
/// Redirects are refused, so a bearer token is never sent to another host.
public struct HTTPTransport: Sendable {
    /// The process-wide client: redirects disallowed, 5 s connect timeout. Never shut down (lives as long as the process).
    static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5))))

    /// Per-request deadline, seconds.
    public var timeout: Int
    public init(timeout: Int) { self.timeout = timeout }

    /// A response: status code and body bytes.
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
    }

    /// Sends one request and waits for the whole response.
    /// - Throws: `TransportError` (connection refused, timeout, bad URL); an HTTP error status is not thrown.
    public func send(_ method: HTTPMethod, _ url: String, headers: [(String, String)], body: Data? = nil) throws -> Response {
        do {
            let request = try HTTPClient.Request(url: url, method: method, headers: HTTPHeaders(headers),
                                                 body: body.map { .bytes($0) })
            let r = try Self.client.execute(request: request, deadline: .now() + .seconds(Int64(timeout))).wait()
            var data = Data()
            if var buf = r.body, let bytes = buf.readBytes(length: buf.readableBytes) { data = Data(bytes) }
            return Response(status: Int(r.status.code), body: data)
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
            throw TransportError(url: url, reason: "no answer within \(timeout) s")
        } catch {
            throw TransportError(url: url, reason: "\(error)")
        }
    }
}

/// The service could not be reached (connection refused, timeout, TLS). Never carries a token.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var reason: String
    public var description: String { "cannot reach \(url): \(reason); check the URL in workstation.yaml and that the service is up" }
}

/// A short, printable excerpt of a JSON error body: `detail`, `non_field_errors` (Authentik) or `errors` (Vault).
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
    guard !parts.isEmpty else { return nil }
    let text = printable(parts.joined(separator: "; "))
    return text.count > 300 ? String(text.prefix(300)) + "..." : text
}
