import Foundation
import Testing
import WorkstationCore
import WorkstationIntegrations
import WorkstationTestSupport

@Suite struct AuthentikClientTests {
    func client(_ fake: FakeAuthentik, token: String? = nil) -> LiveAuthentikClient {
        LiveAuthentikClient(baseURL: fake.url, token: token ?? fake.token, pageSize: 50, timeout: 5)
    }

    @Test func findsUsersByExactUsernameAcrossPages() throws {
        let fake = try FakeAuthentik(users: ["al", "alice", "alice.smith", "bob"])
        let u = try client(fake).findUser(username: "alice.smith")
        #expect(u == IdPUser(pk: 102, username: "alice.smith"))
        #expect(fake.server.requests.allSatisfy { $0.headers["authorization"] == "Bearer \(fake.token)" })
    }

    @Test func unknownUserIsAnErrorNamingTheUser() throws {
        let fake = try FakeAuthentik(users: ["alice"])
        #expect(throws: AuthentikError.unknownUser("dave99")) { try client(fake).findUser(username: "dave99") }
        #expect(AuthentikError.unknownUser("dave99").description.contains("'dave99'"))
    }

    @Test func groupAndMembersFollowPaginationNextUntilZero() throws {
        let names = (1...7).map { "user\($0)" }
        let fake = try FakeAuthentik(users: names, members: names)
        let c = client(fake)
        let pk = try c.findGroup(name: "T3 Users")
        #expect(pk == "5f8e7c1a-0000-4000-8000-00000000000a")
        let members = try c.groupMembers(groupPK: pk)
        #expect(members.map(\.username).sorted() == names.sorted())
        let pages = fake.server.requests.filter { $0.query["groups_by_pk"] != nil }.map { $0.query["page"] ?? "" }
        #expect(pages == ["1", "2", "3", "4"])
    }

    @Test func unknownGroupIsAnError() throws {
        let fake = try FakeAuthentik(users: [])
        #expect(throws: AuthentikError.unknownGroup("Nope")) { try client(fake).findGroup(name: "Nope") }
    }

    @Test func addAndRemoveMemberAnswer204() throws {
        let fake = try FakeAuthentik(users: ["alice", "bob"])
        let c = client(fake)
        let pk = try c.findGroup(name: "T3 Users")
        try c.addMember(groupPK: pk, userPK: 101)
        #expect(fake.members() == ["bob"])
        try c.removeMember(groupPK: pk, userPK: 101)
        #expect(fake.members() == [])
        let posts = fake.server.mutating
        #expect(posts.map(\.path) == ["/api/v3/core/groups/\(pk)/add_user/", "/api/v3/core/groups/\(pk)/remove_user/"])
        #expect(posts.map { String(decoding: $0.body, as: UTF8.self) } == ["{\"pk\":101}", "{\"pk\":101}"])
    }

    @Test func addUnknownUserIs404() throws {
        let fake = try FakeAuthentik(users: ["alice"])
        let c = client(fake)
        let pk = try c.findGroup(name: "T3 Users")
        #expect(
            throws: AuthentikError.status(
                operation: "adding Authentik user 999 to group \(pk)",
                code: 404,
                detail: "No User matches the given query."
            )
        ) {
            try c.addMember(groupPK: pk, userPK: 999)
        }
        #expect(throws: AuthentikError.self) { try c.removeMember(groupPK: pk, userPK: 999) }
    }

    @Test func forbiddenMemberChangeIs403WithAClearMessage() throws {
        let fake = try FakeAuthentik(users: ["alice"])
        fake.forbidden = [100]
        let c = client(fake)
        let pk = try c.findGroup(name: "T3 Users")
        do {
            try c.addMember(groupPK: pk, userPK: 100)
            Issue.record("expected a 403")
        } catch let e as AuthentikError {
            #expect(e.description.contains("refused (403)"))
            #expect(e.description.contains("You do not have permission"))
        }
        #expect(throws: AuthentikError.self) { try c.removeMember(groupPK: pk, userPK: 100) }
    }

    @Test func badTokenIs403AndTheMessageNeverCarriesTheToken() throws {
        let fake = try FakeAuthentik(users: ["alice"])
        let wrong = "wrong-token-XYZ123"
        do {
            _ = try client(fake, token: wrong).findUser(username: "alice")
            Issue.record("expected a 403")
        } catch {
            let text = "\(error)"
            #expect(text.contains("403"))
            #expect(text.contains("API token"))
            #expect(!text.contains(wrong))
        }
    }

    @Test func invalidFilterIs400() throws {
        let fake = try FakeAuthentik(users: ["alice"])
        do {
            _ = try client(fake).groupMembers(groupPK: "00000000-0000-0000-0000-000000000000")
            Issue.record("expected a 400")
        } catch let e as AuthentikError {
            #expect(e.description.contains("rejected (400)"))
            #expect(e.description.contains("Select a valid choice"))
        }
    }

    @Test func unreachableServerIsATransportError() throws {
        var port = 0
        do { port = try FakeAuthentik(users: []).server.port }  // bound, then closed when released
        let c = LiveAuthentikClient(baseURL: "http://127.0.0.1:\(port)", token: "t", timeout: 3)
        #expect(throws: TransportError.self) { try c.findGroup(name: "T3 Users") }
    }
}

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
