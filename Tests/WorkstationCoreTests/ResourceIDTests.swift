import Foundation
import Testing
import WorkstationCore

/// Resource ids keep the printed form plans, `apply --json` and the journal have always carried; parsing and
/// coding round-trip; an unknown kind does not parse.
@Suite struct ResourceIDTests {
    @Test(arguments: [
        (ResourceID.account("alice"), "account:alice"),
        (.membership("alice", "workstation"), "membership:alice:workstation"),
        (.file("/etc/ttyd-user-map"), "file:/etc/ttyd-user-map"),
        (.reach(".claude/CLAUDE.md", user: "bob"), "reach:bob:.claude/CLAUDE.md"),
        (.reach(".claude/CLAUDE.md"), "reach:.claude/CLAUDE.md"),
        (.secret(user: "alice", name: "kubeconfig"), "secret:alice:kubeconfig"),
        (.offboard("alice", stage: "cut"), "offboard:alice:cut"),
        (.idpRevoke("alice.smith"), "idp-revoke:alice.smith"),
        (.k8sUsersLeft("bob"), "k8s-users-left:bob"),
        (.vaultHelper("bob"), "vault-helper:bob"),
        (.packages, "packages"),
    ])
    func printedFormRoundTrips(_ id: ResourceID, _ printed: String) throws {
        #expect(id.description == printed)
        #expect(ResourceID(parsing: printed) == id)
        let coded = try JSONEncoder().encode([id])
        #expect(String(decoding: coded, as: UTF8.self) == "[\"\(printed.replacingOccurrences(of: "/", with: "\\/"))\"]")
        #expect(try JSONDecoder().decode([ResourceID].self, from: coded) == [id])
    }

    @Test func unknownKindsDoNotParse() {
        #expect(ResourceID(parsing: "widget:alice") == nil)
        #expect(ResourceID(parsing: "") == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([ResourceID].self, from: Data("[\"x:y\"]".utf8))
        }
    }
}
