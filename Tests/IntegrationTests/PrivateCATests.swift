import Foundation
import NIOSSL
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A private CA and a certificate for 127.0.0.1 it signed, made with openssl(1) in a temporary directory.
final class PrivateCA {
    let temp: TempRoot
    var dir: String { temp.path }
    var caFile: String { dir + "/ca.pem" }
    let context: NIOSSLContext

    init() throws {
        temp = try TempRoot("ca")
        let dir = temp.path
        try
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            .write(toFile: dir + "/leaf.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=workstation test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key", "-out",
                "leaf.csr", "-subj", "/CN=127.0.0.1",
            ],
            [
                "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                "leaf.pem", "-days", "2",
                "-extfile", "leaf.ext",
            ],
        ]
        for args in steps {
            guard try TestProcess.run("/usr/bin/openssl", args, directory: dir).status == 0 else {
                throw CAError(step: args.joined(separator: " "))
            }
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(dir + "/leaf.pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: dir + "/leaf.key", format: .pem))
        )
        tls.minimumTLSVersion = .tlsv12
        context = try NIOSSLContext(configuration: tls)
    }
    struct CAError: Error { var step: String }
}

/// The services behind a private CA (`ca_file`, `SSL_CERT_FILE`), against real TLS servers on 127.0.0.1.
@Suite(.serialized) struct PrivateCATests {
    @Test func vaultAndAuthentikAreReachedOnlyWithTheirCATrusted() throws {
        let ca = try PrivateCA()
        let vault = try FakeVault(tls: ca.context)
        vault.secrets["secret/app"] = [FakeVault.Version(data: ["k": "v"])]
        let authentik = try FakeAuthentik(users: ["alice"], tls: ca.context)
        #expect(vault.url.hasPrefix("https://127.0.0.1:"))

        // The system's store does not know the private CA: refused, and the message names the fix.
        let untrusted = LiveVaultClient(baseURL: vault.url, token: vault.token, namespace: nil, timeout: 5)
        let error = #expect(throws: TransportError.self) { try untrusted.readKV(mount: "secret", path: "app") }
        #expect(error?.description.contains("ca_file") == true, "\(String(describing: error))")

        for trust in [
            TLSTrust(caFile: ca.caFile), TLSTrust.from(caFile: nil, environment: ["SSL_CERT_FILE": ca.caFile]),
        ] {
            let v = LiveVaultClient(baseURL: vault.url, token: vault.token, namespace: nil, timeout: 5, trust: trust)
            #expect(try v.readKV(mount: "secret", path: "app").data["k"]?.bytes == Data("v".utf8))
            let a = LiveAuthentikClient(baseURL: authentik.url, token: authentik.token, timeout: 5, trust: trust)
            #expect(try a.findUser(username: "alice").username == "alice")
        }
        #expect(!vault.server.requests.isEmpty && !authentik.server.requests.isEmpty)
    }

    @Test func caFileInSettingsIsReadUnderTheRootAndABadOneIsAProblem() throws {
        let ca = try PrivateCA()
        let vault = try FakeVault(tls: ca.context)
        vault.secrets["secret/app"] = [FakeVault.Version(data: ["k": "v"])]
        let authentik = try FakeAuthentik(users: ["alice"], group: "T3 Users", tls: ca.context)
        let s = try Sandbox()
        try s.write("/etc/ws/ca.pem", try String(contentsOfFile: ca.caFile, encoding: .utf8), mode: 0o644)
        try s.write("/etc/ws/not-a-ca.pem", "hello\n", mode: 0o644)
        let env = ["VAULT_TOKEN": vault.token, "AUTHENTIK_TOKEN": authentik.token]
        let yaml =
            "vault: {url: \(vault.url), ca_file: /etc/ws/ca.pem}\nauthentik: {url: \(authentik.url), ca_file: /etc//ws/./ca.pem}\n"
        let st = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
        #expect(st.authentik?.caFile == "/etc/ws/ca.pem")
        let clients = IntegrationClients.live(settings: st, root: s.root, environment: env)
        #expect(clients.problems.isEmpty, "\(clients.problems)")
        #expect(try clients.vault?.readKV(mount: "secret", path: "app").version == 1)
        #expect(try clients.authentik?.findGroup(name: "T3 Users") != nil)

        let bad = try Settings.parse(
            Data(
                "vault: {url: \(vault.url), ca_file: /etc/ws/not-a-ca.pem}\nauthentik: {url: \(authentik.url), ca_file: /etc/ws/absent.pem}\n"
                    .utf8
            ),
            file: "w.yaml"
        )
        let none = IntegrationClients.live(settings: bad, root: s.root, environment: env)
        #expect(none.vault == nil && none.authentik == nil)
        #expect(
            none.problems["vault"]?.contains(
                "ca_file \(s.root.path("/etc/ws/not-a-ca.pem")) is not a readable PEM file"
            ) == true,
            "\(none.problems)"
        )
        #expect(none.problems["authentik"]?.contains("absent.pem") == true)
    }
}
