import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

/// Certificates for the workspaces' mutual TLS, made with openssl(1): a workspace CA, server certificates for
/// alice's and bob's Service names, the dispatcher's client certificate, and a server certificate for alice's name
/// from another CA.
final class WorkspaceCerts {
    let dir: String
    func path(_ name: String) -> String { dir + "/" + name }

    init() throws {
        dir =
            FileManager.default.temporaryDirectory.appendingPathComponent("ws-tls-\(UUID().uuidString.prefix(8))")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func ca(_ name: String) -> [[String]] {
            [
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    "\(name).key", "-out", "\(name).pem", "-days", "2", "-subj", "/CN=\(name)", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ]
            ]
        }
        func leaf(_ name: String, cn: String, san: String?, ca: String, usage: String) throws -> [[String]] {
            var ext =
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=\(usage)\n"
            if let san { ext += "subjectAltName=DNS:\(san)\n" }
            try ext.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
            return [
                [
                    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(name).key",
                    "-out", "\(name).csr", "-subj", "/CN=\(cn)",
                ],
                [
                    "x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial",
                    "-out", "\(name).pem", "-days", "2", "-extfile", "\(name).ext",
                ],
            ]
        }
        var steps = ca("workspaces-ca") + ca("rogue-ca")
        steps += try leaf(
            "alice",
            cn: "workspace-alice.workstation.svc",
            san: "workspace-alice.workstation.svc",
            ca: "workspaces-ca",
            usage: "serverAuth"
        )
        steps += try leaf(
            "bob",
            cn: "workspace-bob.workstation.svc",
            san: "workspace-bob.workstation.svc",
            ca: "workspaces-ca",
            usage: "serverAuth"
        )
        steps += try leaf(
            "rogue-alice",
            cn: "workspace-alice.workstation.svc",
            san: "workspace-alice.workstation.svc",
            ca: "rogue-ca",
            usage: "serverAuth"
        )
        steps += try leaf("dispatch", cn: "workstation-dispatch", san: nil, ca: "workspaces-ca", usage: "clientAuth")
        steps += try leaf("rogue-dispatch", cn: "workstation-dispatch", san: nil, ca: "rogue-ca", usage: "clientAuth")
        for args in steps {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CertError(step: args.joined(separator: " ")) }
        }
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }
    struct CertError: Error { var step: String }

    /// The dispatcher's `workspace_tls`.
    var dispatcherSettings: WorkspaceTLSSettings {
        WorkspaceTLSSettings(
            caFile: path("workspaces-ca.pem"),
            certFile: path("dispatch.pem"),
            keyFile: path("dispatch.key")
        )
    }

    /// A server context presenting `name`'s certificate and requiring a client certificate from the workspace CA
    /// (what the ghostunnel sidecar does).
    func serverContext(_ name: String) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(path("\(name).pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: path("\(name).key"), format: .pem))
        )
        tls.trustRoots = .file(path("workspaces-ca.pem"))
        tls.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: tls)
    }
}

/// A stand-in for a workspace Service on 127.0.0.1: HTTP, over TLS when given a context. Answers
/// `name=<name> user=<X-authentik-username>` and counts the requests it received.
final class WorkspaceUpstream: Sendable {
    let channel: Channel
    private let requests: NIOLockedValueBox<Int>
    var port: Int { channel.localAddress!.port! }
    var requestCount: Int { requests.withLockedValue { $0 } }

    private init(channel: Channel, requests: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.requests = requests
    }

    /// - Parameter close: answer with `Connection: close` and close, so every request opens a new connection.
    static func start(name: String, tls: NIOSSLContext?, close: Bool = false) async throws -> WorkspaceUpstream {
        let requests = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        Answer(name: name, requests: requests, close: close)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return WorkspaceUpstream(channel: channel, requests: requests)
    }

    func stop() async { try? await channel.close() }

    private final class Answer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        let requests: NIOLockedValueBox<Int>
        let close: Bool
        var user = ""
        init(name: String, requests: NIOLockedValueBox<Int>, close: Bool) {
            self.name = name
            self.requests = requests
            self.close = close
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                requests.withLockedValue { $0 += 1 }
                user = h.headers[Gate.usernameHeader].joined(separator: ",")
            case .body: break
            case .end:
                let body = "name=\(name) user=\(user)"
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: String(body.utf8.count))
                if close { headers.add(name: "Connection", value: "close") }
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil
                )
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                    promise: nil
                )
                let closing = close
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if closing { context.close(promise: nil) }
                }
            }
        }
    }
}

/// The dispatcher routing a kubernetes-placed person to their workspace Service (docs/scale-out.md), on loopback:
/// the Service's name is `localhost` (which resolves to 127.0.0.1 here), and the certificate's name is the one
/// dispatch.json carries. Whatever the request says, the target comes from dispatch.json alone; a certificate for
/// another person, or from another CA, gets 502 and the workspace receives no request.
@Suite(.serialized) struct WorkspaceRoutingTests {
    /// dispatch.json version 2 routing `alice` to `localhost:port` (with `tlsName`, over TLS).
    func writeRoute(_ map: MapDir, port: Int, tlsName: String?) throws {
        let users = [
            "alice": DispatchMap.User(osUser: "alice", port: port, ports: [:], host: "localhost", tlsName: tlsName)
        ]
        try map.writeRaw(DispatchMap(version: DispatchMap.version(for: users), users: users).encoded())
    }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// The certificate the workspace presents (nil: plain HTTP).
        var serverCert: String?
        /// The name dispatch.json says the certificate must carry.
        var tlsName: String?
        /// The dispatcher has `workspace_tls`.
        var clientTLS: Bool
        var status: Int
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "her own certificate: routed over TLS",
            serverCert: "alice",
            tlsName: "workspace-alice.workstation.svc",
            clientTLS: true,
            status: 200
        ),
        Case(
            name: "bob's certificate where alice's is expected",
            serverCert: "bob",
            tlsName: "workspace-alice.workstation.svc",
            clientTLS: true,
            status: 502
        ),
        Case(
            name: "her name from another CA",
            serverCert: "rogue-alice",
            tlsName: "workspace-alice.workstation.svc",
            clientTLS: true,
            status: 502
        ),
        Case(
            name: "TLS required, dispatch.workspace_tls missing",
            serverCert: "alice",
            tlsName: "workspace-alice.workstation.svc",
            clientTLS: false,
            status: 502
        ),
        Case(
            name: "tls mode none: plain HTTP to the Service",
            serverCert: nil,
            tlsName: nil,
            clientTLS: false,
            status: 200
        ),
        Case(
            name: "TLS expected, the workspace speaks plain HTTP",
            serverCert: nil,
            tlsName: "workspace-alice.workstation.svc",
            clientTLS: true,
            status: 502
        ),
    ]

    @Test(arguments: cases) func routesToTheServiceOnlyWhenItsCertificateNamesThePerson(_ c: Case) async throws {
        let certs = try WorkspaceCerts()
        let upstream = try await WorkspaceUpstream.start(
            name: "alice-workspace",
            tls: try c.serverCert.map { try certs.serverContext($0) }
        )
        let map = try MapDir()
        try writeRoute(map, port: upstream.port, tlsName: c.tlsName)
        let server = try await startDispatcher(map: map) { config in
            if c.clientTLS { config.workspaceTLS = certs.dispatcherSettings }
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let reply: Result<Reply, Error>
        do { reply = .success(try await send(client, server, path: "/", headers: identity("alice"))) } catch {
            reply = .failure(error)
        }
        try? await client.shutdown()
        await server.shutdown()
        await upstream.stop()
        map.remove()
        let r = try reply.get()
        #expect(r.status == c.status, "\(c.name): \(r.status) \(r.body)")
        if c.status == 200 {
            #expect(r.body == "name=alice-workspace user=alice", "\(c.name)")
            #expect(upstream.requestCount == 1, "\(c.name)")
        } else {
            #expect(upstream.requestCount == 0, "\(c.name): the workspace received a request")
        }
    }

    /// The request's own headers never choose the target: a Host, an X-Forwarded-Host or an X-authentik-* header
    /// naming bob's Service still reaches alice's workspace, as her dispatch.json entry says.
    @Test func theTargetComesFromDispatchJSONNotTheRequest() async throws {
        let certs = try WorkspaceCerts()
        let alice = try await WorkspaceUpstream.start(name: "alice-workspace", tls: try certs.serverContext("alice"))
        let bob = try await WorkspaceUpstream.start(name: "bob-workspace", tls: try certs.serverContext("bob"))
        let map = try MapDir()
        try writeRoute(map, port: alice.port, tlsName: "workspace-alice.workstation.svc")
        let server = try await startDispatcher(map: map) { $0.workspaceTLS = certs.dispatcherSettings }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let headers =
            identity("alice") + [
                ("Host", "workspace-bob.workstation.svc:\(bob.port)"),
                ("X-Forwarded-Host", "workspace-bob.workstation.svc"), ("X-authentik-host", "localhost:\(bob.port)"),
            ]
        let reply: Result<Reply, Error>
        do { reply = .success(try await send(client, server, path: "/", headers: headers)) } catch {
            reply = .failure(error)
        }
        try? await client.shutdown()
        await server.shutdown()
        await alice.stop()
        await bob.stop()
        map.remove()
        let r = try reply.get()
        #expect(r.status == 200)
        #expect(r.body == "name=alice-workspace user=alice")
        #expect(bob.requestCount == 0)
    }

    /// A dispatch.json whose workspace entry is malformed is not used: the last good map stays in force; version 1
    /// may not route to a workspace at all (an older reader would send the person to a port on its own host).
    @Test(arguments: [
        (
            #"{"version": 2, "users": {"alice": {"os_user": "alice", "port": 3773, "ports": {}, "host": "bad host"}}}"#,
            "host"
        ),
        (
            #"{"version": 2, "users": {"alice": {"os_user": "alice", "port": 3773, "ports": {}, "tls_name": "x.svc"}}}"#,
            "tls_name without host"
        ),
        (
            #"{"version": 1, "users": {"alice": {"os_user": "alice", "port": 3773, "ports": {}, "host": "a.svc"}}}"#,
            "version 1 with a host"
        ),
        (#"{"version": 3, "users": {}}"#, "version 3"),
    ])
    func aMalformedWorkspaceEntryKeepsTheLastGoodMap(_ text: String, _ what: String) throws {
        let map = try MapDir()
        defer { map.remove() }
        try writeRoute(map, port: 4000, tlsName: nil)
        let table = RouteTable(path: map.path, logger: .init(label: "test"))
        table.refresh(force: true)
        #expect(table.lookup("alice")?.host == "localhost", "\(what)")
        try map.writeRaw(Data(text.utf8))
        guard case .kept = table.refresh(force: true) else {
            Issue.record("\(what): the file was used")
            return
        }
        #expect(table.lookup("alice")?.port == 4000, "\(what)")
    }

    /// `dispatch.workspace_tls` is read with located errors; a relative path or a missing key changes nothing.
    @Test(arguments: [
        (
            "dispatch:\n  workspace_tls: {ca_file: ca.pem, cert_file: /c, key_file: /k}\n",
            "workstation.yaml:2:28: error: dispatch.workspace_tls.ca_file must be an absolute path"
        ),
        ("dispatch:\n  workspace_tls: {ca_file: /ca.pem, cert_file: /c}\n", "missing required key 'key_file'"),
        ("dispatch:\n  workspace_tls: {ca_file: /ca.pem, cert_file: /c, key_file: /k, crl: /x}\n", "unknown key 'crl'"),
    ])
    func workspaceTLSSettingsAreLocated(_ yaml: String, _ expected: String) {
        #expect(throws: ValidationFailure.self) {
            _ = try DispatchConfig.load(yaml: Data(yaml.utf8), file: "workstation.yaml", localAddresses: [])
        }
        do {
            _ = try DispatchConfig.load(yaml: Data(yaml.utf8), file: "workstation.yaml", localAddresses: [])
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
        let ok = try? DispatchConfig.load(
            yaml: Data("dispatch:\n  workspace_tls: {ca_file: /a.pem, cert_file: /c.pem, key_file: /k.pem}\n".utf8),
            file: "workstation.yaml",
            localAddresses: []
        )
        #expect(ok?.workspaceTLS == WorkspaceTLSSettings(caFile: "/a.pem", certFile: "/c.pem", keyFile: "/k.pem"))
    }

    /// A rotated client certificate is used from the next new connection on, without a restart: replaced by one
    /// from another CA the workspace refuses it (502), put back it works again.
    @Test func theClientCertificateIsReReadWhenItChanges() async throws {
        let certs = try WorkspaceCerts()
        let upstream = try await WorkspaceUpstream.start(
            name: "alice-workspace",
            tls: try certs.serverContext("alice"),
            close: true
        )
        let map = try MapDir()
        try writeRoute(map, port: upstream.port, tlsName: "workspace-alice.workstation.svc")
        let live = WorkspaceTLSSettings(
            caFile: certs.path("workspaces-ca.pem"),
            certFile: map.dir + "/client.pem",
            keyFile: map.dir + "/client.key"
        )
        func install(_ name: String) throws {
            for (from, to) in [("\(name).pem", live.certFile), ("\(name).key", live.keyFile)] {
                let tmp = to + ".new"
                try Data(contentsOf: URL(fileURLWithPath: certs.path(from))).write(to: URL(fileURLWithPath: tmp))
                guard rename(tmp, to) == 0 else { throw CocoaError(.fileWriteUnknown) }
            }
        }
        try install("dispatch")
        let server = try await startDispatcher(map: map) { $0.workspaceTLS = live }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var statuses: [Int] = []
        do {
            statuses.append(try await send(client, server, headers: identity("alice")).status)
            try install("rogue-dispatch")
            statuses.append(try await send(client, server, headers: identity("alice")).status)
            try install("dispatch")
            statuses.append(try await send(client, server, headers: identity("alice")).status)
        } catch {
            Issue.record("\(error)")
        }
        try? await client.shutdown()
        await server.shutdown()
        await upstream.stop()
        map.remove()
        #expect(statuses == [200, 502, 200])
    }
}
