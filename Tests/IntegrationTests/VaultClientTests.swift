import Foundation
import Testing
import WorkstationCore
import WorkstationIntegrations
import WorkstationTestSupport

@Suite struct VaultClientTests {
    func make() throws -> (FakeVault, LiveVaultClient) {
        let fake = try FakeVault()
        fake.secrets["secret/app"] = [
            FakeVault.Version(data: ["k": "v1"]), FakeVault.Version(data: ["k": "value-two", "n": "x"]),
        ]
        fake.secrets["secret/gone"] = [
            FakeVault.Version(data: ["k": "v"]),
            FakeVault.Version(data: ["k": "w"], deletionTime: "2026-11-01T10:00:00Z"),
        ]
        fake.secrets["secret/burnt"] = [FakeVault.Version(data: ["k": "v"], destroyed: true)]
        fake.denied = ["secret/private"]
        fake.secrets["secret/private"] = [FakeVault.Version(data: ["k": "v"])]
        return (fake, LiveVaultClient(baseURL: fake.url, token: fake.token, namespace: nil, timeout: 5))
    }

    @Test func readsTheLatestVersion() throws {
        let (fake, c) = try make()
        let s = try c.readKV(mount: "secret", path: "app")
        #expect(s.version == 2)
        #expect(s.data["k"]?.bytes == Data("value-two".utf8))
        #expect(try c.readSecret(mount: "secret", path: "app", key: "n").bytes == Data("x".utf8))
        #expect(
            fake.server.requests.allSatisfy {
                $0.path == "/v1/secret/data/app" && $0.headers["x-vault-token"] == fake.token
            }
        )
    }

    @Test func missingKeyNamesTheKeysNotTheValues() throws {
        let (fake, c) = try make()
        defer { withExtendedLifetime(fake) {} }
        do {
            _ = try c.readSecret(mount: "secret", path: "app", key: "nope")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("keys: k, n"))
            #expect(!"\(error)".contains("value-two"))
        }
    }

    @Test func forbiddenPathIs403() throws {
        let (fake, c) = try make()
        defer { withExtendedLifetime(fake) {} }
        do {
            _ = try c.readKV(mount: "secret", path: "private")
            Issue.record("expected a 403")
        } catch let e as VaultError {
            guard case .permissionDenied(let ref, let detail) = e else {
                Issue.record("got \(e)")
                return
            }
            #expect(ref == "secret/private")
            #expect(detail?.contains("permission denied") == true)
            #expect(e.description.contains("refused (403)"))
        }
    }

    @Test func badTokenIs403AndNotEchoed() throws {
        let (fake, _) = try make()
        let c = LiveVaultClient(baseURL: fake.url, token: "hvs.WRONG-777", namespace: nil, timeout: 5)
        do {
            _ = try c.readKV(mount: "secret", path: "app")
            Issue.record("expected a 403")
        } catch {
            #expect("\(error)".contains("403"))
            #expect(!"\(error)".contains("WRONG-777"))
        }
    }

    @Test func missingPathIs404() throws {
        let (fake, c) = try make()
        defer { withExtendedLifetime(fake) {} }
        #expect(throws: VaultError.notFound(ref: "secret/absent")) { try c.readKV(mount: "secret", path: "absent") }
    }

    @Test func softDeletedVersionIsReportedWithItsDeletionTime() throws {
        let (fake, c) = try make()
        defer { withExtendedLifetime(fake) {} }
        #expect(throws: VaultError.deleted(ref: "secret/gone", version: 2, at: "2026-11-01T10:00:00Z")) {
            try c.readKV(mount: "secret", path: "gone")
        }
        #expect(VaultError.deleted(ref: "secret/gone", version: 2, at: "t").description.contains("undelete"))
    }

    @Test func destroyedVersionIsReported() throws {
        let (fake, c) = try make()
        defer { withExtendedLifetime(fake) {} }
        #expect(throws: VaultError.destroyed(ref: "secret/burnt", version: 1)) {
            try c.readKV(mount: "secret", path: "burnt")
        }
    }

    @Test func namespaceHeaderIsSent() throws {
        let (fake, _) = try make()
        fake.namespace = "team/ns1"
        let c = LiveVaultClient(baseURL: fake.url, token: fake.token, namespace: "team/ns1", timeout: 5)
        #expect(try c.readSecret(mount: "secret", path: "app", key: "k").bytes == Data("value-two".utf8))
        #expect(fake.server.requests.last?.headers["x-vault-namespace"] == "team/ns1")
        let without = LiveVaultClient(baseURL: fake.url, token: fake.token, namespace: nil, timeout: 5)
        #expect(throws: VaultError.self) { try without.readKV(mount: "secret", path: "app") }
    }

    @Test func redactedNeverPrintsOrEncodesItsBytes() throws {
        let r = Redacted(Data("hunter2-secret".utf8))
        #expect("\(r)" == "<redacted, 14 bytes>")
        #expect(String(reflecting: r) == "<redacted, 14 bytes>")
        var dumped = ""
        dump(Action.createSecretFile(user: "alice", path: "/home/alice/x", content: r, mode: 0o600), to: &dumped)
        #expect(!dumped.contains("hunter2"))
        let encoded = String(
            decoding: try JSONEncoder().encode(Action.createSecretFile(user: "a", path: "/p", content: r, mode: 0o600)),
            as: UTF8.self
        )
        #expect(!encoded.contains("hunter2"))
        #expect(encoded.contains("<redacted, 14 bytes>"))
    }
}
