import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import WorkstationCore

/// Where a kubernetes-placed person's requests go: their workspace Service, exactly as dispatch.json names it
/// (written by `apply` from the roster alone; never from a request).
public struct WorkspaceTarget: Sendable, Hashable {
    /// The Service's host name, e.g. `workspace-alice.workstation.svc.cluster.local`.
    public var host: String
    /// The name the workspace's certificate must carry; nil: plain HTTP (`workspaces.tls.mode: none`).
    public var tlsName: String?
    public init(host: String, tlsName: String?) {
        self.host = host
        self.tlsName = tlsName
    }
}

extension DispatchMap.User {
    /// The workspace this entry routes to; nil for an instance on this host.
    var workspaceTarget: WorkspaceTarget? { host.map { WorkspaceTarget(host: $0, tlsName: tlsName) } }

    /// Why this entry cannot be used, or nil: a `host` that is not a host name, or a `tls_name` that is not one.
    var workspaceProblem: String? {
        if let host, !isDNSSubdomain(host) { return "host '\(printable(host))' is not a host name" }
        if let tlsName, host == nil || !isDNSSubdomain(tlsName) {
            return "tls_name '\(printable(tlsName))' is not a host name of a workspace entry"
        }
        return nil
    }
}

/// `dispatch.workspace_tls`: the dispatcher's side of the workspaces' mutual TLS (docs/scale-out.md).
///
/// ```yaml
/// dispatch:
///   workspace_tls:
///     ca_file: /etc/workstation/workspaces-ca.pem      # the only roots trusted for workspace certificates
///     cert_file: /etc/workstation/dispatch-client.pem  # the dispatcher's client certificate (CN workstation-dispatch)
///     key_file: /etc/workstation/dispatch-client.key
/// ```
public struct WorkspaceTLSSettings: Sendable, Hashable {
    public var caFile: String
    public var certFile: String
    public var keyFile: String
    public init(caFile: String, certFile: String, keyFile: String) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    public static let keys = ["ca_file", "cert_file", "key_file"]

    /// Reads the `dispatch.workspace_tls` mapping: three absolute paths, all required.
    static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> WorkspaceTLSSettings? {
        guard let r = KeyedReader(v, what: "dispatch.workspace_tls", known: keys, diags) else { return nil }
        func path(_ key: String) -> String? {
            guard let pv = r.required(key, diags), let p = pv.string("dispatch.workspace_tls.\(key)", diags) else {
                return nil
            }
            guard p.hasPrefix("/") else {
                diags.error(
                    pv.location,
                    "dispatch.workspace_tls.\(key) must be an absolute path, got '\(printable(p))'"
                )
                return nil
            }
            return p
        }
        let ca = path("ca_file")
        let cert = path("cert_file")
        let key = path("key_file")
        guard let ca, let cert, let key else { return nil }
        return WorkspaceTLSSettings(caFile: ca, certFile: cert, keyFile: key)
    }
}

/// The TLS client context for workspace connections: trusts `ca_file` alone, presents the client certificate,
/// verifies the chain and that the certificate names the entry's `tls_name` (`CertificateVerification
/// .fullVerification` with the name as `serverHostname`, which NIOSSL checks against the subject alternative names,
/// RFC 6125). Rebuilt when any of the three files changes (checked per new connection: three `stat(2)`), so a
/// rotated certificate is used without a restart; a file that cannot be read keeps the context built last.
final class WorkspaceTLSClient: Sendable {
    let settings: WorkspaceTLSSettings
    private let state: NIOLockedValueBox<(stamps: [FileStamp?], context: NIOSSLContext?, problem: String?)>

    init(settings: WorkspaceTLSSettings) {
        self.settings = settings
        state = NIOLockedValueBox(([], nil, nil))
        _ = try? context()
    }

    /// The context in force, rebuilt first when a file changed.
    /// - Throws: `WorkspaceTLSError` when no context could ever be built (a file missing or not PEM).
    func context() throws -> NIOSSLContext {
        let paths = [settings.caFile, settings.certFile, settings.keyFile]
        let stamps = paths.map { FileStamp.of($0) }
        return try state.withLockedValue { s in
            if let c = s.context, s.stamps == stamps { return c }
            do {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .file(settings.caFile)
                tls.certificateVerification = .fullVerification
                tls.minimumTLSVersion = .tlsv12
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(settings.certFile).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: settings.keyFile, format: .pem))
                let c = try NIOSSLContext(configuration: tls)
                s = (stamps, c, nil)
                return c
            } catch {
                s.problem = "\(error)"
                if let c = s.context { return c }
                throw WorkspaceTLSError(
                    description:
                        "dispatch.workspace_tls: cannot load \(paths.joined(separator: ", ")) (\(error)); fix the files"
                )
            }
        }
    }

    /// The handler that opens TLS to a workspace and refuses a certificate that does not name `tlsName`.
    func handler(serverName tlsName: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context(), serverHostname: tlsName)
    }
}

/// A workspace connection could not be secured, or its certificate was refused.
struct WorkspaceTLSError: Error, CustomStringConvertible {
    var description: String
}
