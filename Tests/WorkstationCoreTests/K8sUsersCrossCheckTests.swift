import Foundation
import Testing

@testable import WorkstationCore

/// The roster against the cluster's k8s_users map: one owner per RBAC binding, emails that must agree, and people
/// who left but are still in the map.
@Suite struct K8sUsersCrossCheckTests {

    @Test(arguments: [
        (Set<String>(), ["alice", "bob-dev"]),
        (Set(["alice"]), ["bob-dev"]),
        (Set(["alice", "bob"]), [String]()),
    ])
    func renderRbacBindsOnlyPeopleK8sUsersDoesNot(provisioned: Set<String>, bound: [String]) throws {
        let yaml = try KubernetesManifests.rbac(
            roster: Roster(entries: [LifecycleFixture.alice, LifecycleFixture.bob]),
            settings: KubernetesSettings(),
            provisioned: provisioned
        )
        for os in ["alice", "bob-dev"] {
            #expect(yaml.contains("workstation/os-user: \"\(os)\"") == bound.contains(os), "\(os)\n\(yaml)")
            #expect(yaml.contains("# not bound here: \(os) ") == !bound.contains(os))
        }
        // Every binding carries the person label (the selector the revoke stage prints matches it).
        let bindings = yaml.components(separatedBy: "---\n").filter { $0.contains("Binding") }
        #expect(
            bindings.allSatisfy {
                $0.contains("app.kubernetes.io/managed-by: workstation") && $0.contains("workstation/os-user:")
            }
        )
    }

    @Test(arguments: [
        ("alice@example.org" as String?, "alice@example.org" as String?, false),
        ("alice@example.org", nil, false),  // k8s_users names no email: nothing to compare
        ("alice@example.org", "mallory@example.org", true),
        (nil, "alice@example.org", true),
        ("Alice@example.org", "alice@example.org", true),  // the binding subject is matched exactly
    ])
    func theRosterEmailIsCheckedAgainstK8sUsers(roster: String?, k8s: String?, mismatch: Bool) {
        var e = LifecycleFixture.alice
        e.email = roster
        var snap = LifecycleFixture.host()
        var obs = K8sUsersObservation(file: "/etc/workstation/k8s_users.json")
        obs.entries["alice"] = K8sUserEntry(
            role: "power-user",
            namespaces: [],
            email: k8s,
            location: SourceLocation(file: "k8s_users.json", line: 2, column: 3)
        )
        snap.remote.k8sUsers = obs
        let problems = Planner(settings: Settings()).kubernetesCrossCheck(Roster(entries: [e]), snap)
        #expect(problems.contains { $0.message.contains("email") } == mismatch, "\(problems)")
    }

    @Test(arguments: [
        (["alice", "bob"], true),  // bob-dev left; 'bob' still in k8s_users
        (["alice"], false),  // removed from k8s_users too
    ])
    func peopleWhoLeftButRemainInK8sUsersAreReported(k8sUsers: [String], reported: Bool) {
        var settings = Settings()
        settings.kubernetes = KubernetesSettings()
        settings.kubernetes?.k8sUsersFile = "/etc/workstation/k8s_users.json"
        var snap = LifecycleFixture.host()
        snap.state.identities["bob-dev"] = RecordedIdentity(
            authentikUser: "bob",
            k8sUser: "bob",
            tier: "namespace-owner",
            namespaces: ["team-bob"]
        )
        var obs = K8sUsersObservation(file: "/etc/workstation/k8s_users.json")
        for k in k8sUsers {
            obs.entries[k] = K8sUserEntry(
                role: k == "bob" ? "namespace-owner" : "power-user",
                namespaces: k == "bob" ? ["team-bob"] : [],
                email: "\(k)@example.org",
                location: SourceLocation(file: "k8s_users.json", line: 1, column: 1)
            )
        }
        snap.remote.k8sUsers = obs
        let d = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        let left = plan.changes.filter { $0.id == "k8s-users-left:bob-dev" }
        #expect(left.count == (reported ? 1 : 0))
        if let c = left.first {
            #expect(c.kind == .pending && c.safety == .revoke && c.summary.contains("still grants 'bob'"))
            #expect(c.command == KubernetesManifests.revocationCommand(osUser: "bob-dev"))
        }
    }
}
