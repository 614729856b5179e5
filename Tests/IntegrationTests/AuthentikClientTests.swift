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
