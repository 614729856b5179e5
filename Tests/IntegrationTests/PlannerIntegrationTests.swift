import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

/// Planner fixtures: (roster, settings, host snapshot with remote observations) -> changes. Pure, no servers.
@Suite struct PlannerIntegrationTests {
    let roster = try! Roster.parse(Data(Sandbox.defaultRoster.utf8), file: "roster.yaml")

    func settings() throws -> Settings {
        try Settings.parse(
            Data(
                """
                authentik: {url: https://auth.example.org}
                kubernetes: {server: https://k.example.org, oidc_issuer_url: https://auth.example.org/o/k/, oidc_client_id: k}
                vault:
                  url: https://vault.example.org
                  secret_files:
                    - {name: ha, path: openclaw, key: ha_url, target: .claude.json, flags: [ha]}

                """.utf8
            ),
            file: "w.yaml"
        )
    }

    func plan(_ configure: (inout HostSnapshot) -> Void) throws -> Plan {
        let st = try settings()
        var snap = HostSnapshot()
        var ak = AuthentikObservation()
        ak.groupPK = "g"
        ak.members = [IdPUser(pk: 1, username: "carol")]
        ak.users = [
            "carol": IdPUser(pk: 1, username: "carol"), "alice.smith": IdPUser(pk: 2, username: "alice.smith"),
            "bob": IdPUser(pk: 3, username: "bob"),
        ]
        snap.remote.authentik = ak
        var v = VaultObservation()
        v.secrets["ha"] = .value(Redacted(Data("https://ha.example.org/?t=zzz".utf8)))
        snap.remote.vault = v
        configure(&snap)
        let d = desire(roster: roster, settings: st, snapshot: snap)
        return Planner(settings: st).plan(desired: d, observed: snap)
    }

    @Test func membershipComesFirstAndEveryHostChangeOfThatUserDependsOnIt() throws {
        let p = try plan { _ in }
        #expect(p.changes.prefix(2).map(\.id.description) == ["idp:alice", "idp:bob-dev"])
        let alice = p.changes.filter { $0.user == "alice" && $0.action != nil && $0.id != "idp:alice" }
        #expect(alice.count > 5)
        #expect(alice.allSatisfy { $0.dependsOn.contains("idp:alice") })
        #expect(!p.changes.contains { $0.id == "idp:carol" }, "already a member")
        let secret = try #require(p.changes.first { $0.id == "secret:alice:ha" })
        #expect(secret.fields.contains { $0.after == "<redacted, 29 bytes>" })
        #expect(!"\(p)".contains("zzz"))
        #expect(!PlanRenderer.json(p).contains("zzz") && !PlanRenderer.human(p).contains("zzz"))
        #expect(p.errors.isEmpty)
    }

    @Test func aLookupErrorHoldsBackOnlyThatUsersHostChanges() throws {
        let p = try plan { s in
            s.remote.authentik!.users["bob"] = nil
            s.remote.authentik!.userErrors["bob"] = "looking up Authentik user 'bob' was refused (403)"
        }
        #expect(!p.changes.contains { $0.user == "bob-dev" && $0.action != nil })
        #expect(p.changes.contains { $0.id == "account:alice" })
        #expect(
            p.errors == [
                "bob-dev: authentik: looking up Authentik user 'bob' was refused (403); bob-dev's host changes were held back"
            ]
        )
    }

    @Test func aMemberOfTheGroupAlreadyNeedsNoChangeAndNoDependency() throws {
        let p = try plan { s in s.remote.authentik!.members.append(IdPUser(pk: 2, username: "alice.smith")) }
        #expect(!p.changes.contains { $0.id == "idp:alice" })
        #expect(p.changes.filter { $0.user == "alice" }.allSatisfy { !$0.dependsOn.contains("idp:alice") })
    }

    @Test func kubeconfigAndSecretsWaitForTheAccount() throws {
        let p = try plan { _ in }
        #expect(
            p.changes.first { $0.id == "kubeconfig:alice" }?.dependsOn.map(\.description).contains("account:alice")
                == true
        )
        #expect(
            p.changes.first { $0.id == "secret:alice:ha" }?.dependsOn.map(\.description).contains("account:alice")
                == true
        )
        #expect(!p.changes.contains { $0.id == "secret:bob-dev:ha" }, "bob-dev has no ha flag")
    }
}
