import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationCore

/// `placement: host | kubernetes` (docs/scale-out.md): located errors for bad input, what desire makes of a
/// kubernetes-placed person (a route to their Service, nothing on the host), and planner fixtures for changes of
/// placement, departures and the admission ceiling counting both placements.
@Suite struct PlacementTests {
    static let workspacesYAML = """
        workspaces:
          image: registry.example.org/workstation/agent:1
          config_base: {git_sync: {repo: https://git.example.org/carol/config-base.git}}
          dispatcher: {sources: [192.0.2.10/32]}

        """

    static func settings(_ extra: String = "") throws -> Settings {
        try Settings.parse(Data((workspacesYAML + extra).utf8), file: "workstation.yaml")
    }

    /// The first error of parsing `settings` then `roster`, as printed.
    static func firstError(roster: String, settings: String) -> String? {
        do {
            let s = try Settings.parse(Data(settings.utf8), file: "workstation.yaml")
            _ = try Roster.parse(Data(roster.utf8), file: "roster.yaml", settings: s)
            return nil
        } catch let f as ValidationFailure {
            return f.diagnostics.first.map { "\($0)" }
        } catch {
            return "\(error)"
        }
    }

    struct Bad: Sendable, CustomStringConvertible {
        var name: String
        var roster: String
        var settings: String
        var error: String
        var description: String { name }
    }

    static let alice = "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user"
    static let bad: [Bad] = [
        Bad(
            name: "unknown placement",
            roster: alice + ", placement: k8s, uid: 1100 }\n",
            settings: workspacesYAML,
            error: "roster.yaml:2:81: error: placement must be host or kubernetes, got 'k8s'"
        ),
        Bad(
            name: "an admin placed on kubernetes",
            roster: "users:\n  carol: { authentik_user: carol, k8s_user: carol, tier: admin, placement: kubernetes }\n",
            settings: workspacesYAML,
            error:
                "roster.yaml:2:76: error: an admin is adopted on the host (the config base author), so placement: kubernetes does not apply"
        ),
        Bad(
            name: "kubernetes without a workspaces section",
            roster: alice + ", placement: kubernetes, uid: 1100 }\n",
            settings: "",
            error:
                "roster.yaml:2:81: error: 'alice' is placed on kubernetes, but the settings have no workspaces: section"
        ),
        Bad(
            name: "kubernetes without a pinned uid",
            roster: alice + ", placement: kubernetes }\n",
            settings: workspacesYAML,
            error: "roster.yaml:2:81: error: 'alice' is placed on kubernetes without a pinned uid; pin one (uid: 1100)"
        ),
        Bad(
            name: "kubernetes by the settings default, without a uid",
            roster: alice + " }\n",
            settings: workspacesYAML + "placement: kubernetes\n",
            error:
                "roster.yaml:2:3: error: 'alice' is placed on kubernetes (the settings default placement: kubernetes) without a pinned uid"
        ),
        Bad(
            name: "kubernetes with a host port pinned",
            roster: alice + ", placement: kubernetes, uid: 1100, port: 3800 }\n",
            settings: workspacesYAML,
            error: "roster.yaml:2:110: error: 'alice' is placed on kubernetes: port and ports pin the ports of units"
        ),
        Bad(
            name: "an os_user that names no Kubernetes object",
            roster:
                "users:\n  alice_: { authentik_user: alice, k8s_user: alice, tier: power-user, placement: kubernetes, uid: 1100 }\n",
            settings: workspacesYAML,
            error: "roster.yaml:2:82: error: os_user 'alice_' cannot name Kubernetes objects"
        ),
        Bad(
            name: "two os_users that make one object name",
            roster:
                "users:\n  a_b: { authentik_user: ab1, k8s_user: ab1, tier: power-user, placement: kubernetes, uid: 1100 }\n  a-b: { authentik_user: ab2, k8s_user: ab2, tier: power-user, placement: kubernetes, uid: 1101 }\n",
            settings: workspacesYAML,
            error:
                "roster.yaml:3:75: error: 'a-b' and 'a_b' (line 2) would both name the Kubernetes objects workspace-a-b"
        ),
        Bad(
            name: "default placement kubernetes without workspaces",
            roster: "users: {}\n",
            settings: "placement: kubernetes\n",
            error: "workstation.yaml:1:12: error: placement: kubernetes needs a workspaces: section"
        ),
        Bad(
            name: "unknown default placement",
            roster: "users: {}\n",
            settings: "placement: cloud\n",
            error: "workstation.yaml:1:12: error: placement must be host or kubernetes, got 'cloud'"
        ),
        Bad(
            name: "workspaces without an image",
            roster: "users: {}\n",
            settings:
                "workspaces:\n  config_base: {claim: base}\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error: "workstation.yaml:2:3: error: workspaces is missing required key 'image'"
        ),
        Bad(
            name: "an image with a space",
            roster: "users: {}\n",
            settings:
                "workspaces:\n  image: agent latest\n  config_base: {claim: base}\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error: "workstation.yaml:2:10: error: workspaces.image 'agent latest' is not an image reference"
        ),
        Bad(
            name: "workspaces without a config base",
            roster: "users: {}\n",
            settings: "workspaces:\n  image: agent:1\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error: "workstation.yaml:2:3: error: workspaces is missing required key 'config_base'"
        ),
        Bad(
            name: "both git_sync and a claim",
            roster: "users: {}\n",
            settings:
                "workspaces:\n  image: agent:1\n  config_base: {claim: base, git_sync: {repo: https://git.example.org/b.git}}\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error: "workstation.yaml:3:16: error: workspaces.config_base needs exactly one of git_sync"
        ),
        Bad(
            name: "a local git-sync repo",
            roster: "users: {}\n",
            settings:
                "workspaces:\n  image: agent:1\n  config_base: {git_sync: {repo: /srv/base}}\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error:
                "workstation.yaml:3:34: error: workspaces.config_base.git_sync.repo '/srv/base' must be a remote git URL"
        ),
        Bad(
            name: "a home size that is no quantity",
            roster: "users: {}\n",
            settings: workspacesYAML + "  home_size: {power-user: 20GB}\n",
            error: "workstation.yaml:5:27: error: workspaces.home_size.power-user '20GB' is not a Kubernetes quantity"
        ),
        Bad(
            name: "a source that is no CIDR",
            roster: "users: {}\n",
            settings:
                "workspaces:\n  image: agent:1\n  config_base: {claim: base}\n  dispatcher: {sources: [host.example.org]}\n",
            error: "workstation.yaml:4:26: error: workspaces.dispatcher.sources: 'host.example.org' is not a CIDR"
        ),
        Bad(
            name: "a NetworkPolicy that admits nobody",
            roster: "users: {}\n",
            settings: "workspaces:\n  image: agent:1\n  config_base: {claim: base}\n",
            error: "workstation.yaml:2:3: error: workspaces: the NetworkPolicies would admit nobody"
        ),
        Bad(
            name: "an in-cluster dispatcher without an image",
            roster: "users: {}\n",
            settings: "workspaces:\n  image: agent:1\n  config_base: {claim: base}\n  dispatcher: {in_cluster: true}\n",
            error: "workstation.yaml:4:15: error: workspaces.dispatcher: in_cluster: true needs image"
        ),
        Bad(
            name: "an unknown TLS mode",
            roster: "users: {}\n",
            settings: workspacesYAML + "  tls: {mode: optional}\n",
            error: "workstation.yaml:5:15: error: workspaces.tls.mode must be mutual or none, got 'optional'"
        ),
        Bad(
            name: "an unknown secrets source",
            roster: "users: {}\n",
            settings: workspacesYAML + "  secrets: {from: env}\n",
            error: "workstation.yaml:5:19: error: workspaces.secrets.from must be vault-injector, secret or none"
        ),
        Bad(
            name: "a namespace that is no DNS label",
            roster: "users: {}\n",
            settings: workspacesYAML + "  namespace: Workstation\n",
            error: "workstation.yaml:5:14: error: workspaces.namespace 'Workstation' is not a DNS-1123 label"
        ),
        Bad(
            name: "a misspelt key",
            roster: "users: {}\n",
            settings: workspacesYAML + "  home_sizes: {power-user: 1Gi}\n",
            error: "workstation.yaml:5:3: error: unknown key 'home_sizes' in workspaces; did you mean 'home_size'?"
        ),
    ]

    @Test(arguments: bad) func badInputIsALocatedError(_ c: Bad) {
        let got = Self.firstError(roster: c.roster, settings: c.settings)
        #expect(got?.hasPrefix(c.error) == true, "\(c.name): \(got ?? "no error")")
    }

    @Test func aValidPlacementParses() throws {
        let s = try Self.settings()
        let r = try Roster.parse(
            Data(
                (Self.alice
                    + ", placement: kubernetes, uid: 1100 }\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n")
                    .utf8
            ),
            file: "roster.yaml",
            settings: s
        )
        #expect(r["alice"]?.placement(s) == .kubernetes)
        #expect(r["bob"]?.placement(s) == .host)
        #expect(r.kubernetesPlaced(s).map(\.osUser) == ["alice"])
        #expect(s.workspaces?.serviceHost(for: "alice") == "workspace-alice.workstation.svc.cluster.local")
        #expect(s.workspaces?.tlsName(for: "a_b") == "workspace-a-b.workstation.svc")
    }

    // MARK: desire and the planner

    static let roster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
          erin: { authentik_user: erin, k8s_user: erin, tier: power-user, placement: kubernetes, uid: 1100 }

        """

    func plan(_ yaml: String, _ host: HostSnapshot, settings: Settings) throws -> (Plan, DesiredState) {
        let r = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: r, settings: settings, snapshot: host)
        #expect(d.diagnostics.isEmpty, "\(d.diagnostics)")
        return (Planner(settings: settings).plan(desired: d, observed: host), d)
    }

    @Test func aKubernetesPlacedPersonIsARouteToTheirServiceAndNothingOnTheHost() throws {
        let s = try Self.settings()
        let (p, d) = try plan(Self.roster, PlannerTests.freshHost(), settings: s)
        #expect(d.users.map(\.osUser) == ["alice"])
        #expect(d.workspaces.map(\.osUser) == ["erin"])
        #expect(d.workspaces.first?.isNew == true)
        #expect(d.ports["t3-serve@"]?["erin"] == nil)
        #expect(!p.changes.contains { $0.user == "erin" })
        #expect(p.notes.contains { $0.hasPrefix("placed on kubernetes (namespace workstation): erin;") })
        let map = try DispatchMap.decode(d.dispatch)
        #expect(map.version == 2)
        #expect(
            map.users["erin"]
                == DispatchMap.User(
                    osUser: "erin",
                    port: 3773,
                    ports: [:],
                    host: "workspace-erin.workstation.svc.cluster.local",
                    tlsName: "workspace-erin.workstation.svc"
                )
        )
        #expect(map.users["alice.smith"]?.host == nil)
        #expect(!String(decoding: d.ttydUserMap, as: UTF8.self).contains("erin"))
        // tls: none routes without a certificate name.
        let plain = try Self.settings("  tls: {mode: none}\n")
        let (_, d2) = try plan(Self.roster, PlannerTests.freshHost(), settings: plain)
        #expect(try DispatchMap.decode(d2.dispatch).users["erin"]?.tlsName == nil)
    }

    /// Without anyone on Kubernetes, dispatch.json stays version 1, byte for byte what it was.
    @Test func dispatchJSONStaysVersion1WithoutWorkspacesAndVersion2MatchesJSONEncoder() throws {
        let s = try Self.settings()
        let (_, d) = try plan(PlannerTests.roster, PlannerTests.freshHost(), settings: s)
        #expect(try DispatchMap.decode(d.dispatch).version == 1)
        let (_, d2) = try plan(Self.roster, PlannerTests.freshHost(), settings: s)
        let map = try DispatchMap.decode(d2.dispatch)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        #expect(map.encoded() == (try enc.encode(map)) + Data("\n".utf8))
        #expect(adoptablePorts(from: map)["erin"] == nil)
    }

    /// host -> kubernetes: the route moves to the Service at once, the terminal map drops her, and her host side
    /// waits for the staged offboarding (`--placement host`); nothing of hers is created.
    @Test func movingToKubernetesPlansTheHostSideOffboarding() throws {
        let s = try Self.settings()
        let (_, d0) = try plan(Self.roster, PlannerTests.freshHost(), settings: s)
        var host = PlannerTests().converged(PlannerTests.freshHost(), d0, settings: s)
        host.state.accounts["alice"] = .init(uid: 1000, created: true)
        let moved = Self.roster.replacingOccurrences(
            of: "alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }",
            with:
                "alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, placement: kubernetes, uid: 1000 }"
        )
        let (p, d) = try plan(moved, host, settings: s)
        #expect(d.movedAway == ["alice"])
        #expect(d.users.isEmpty)
        // Her host port stays reserved until the host side is archived.
        #expect(d.ports["t3-serve@"]?["alice"] == d0.ports["t3-serve@"]?["alice"])
        let alice = p.changes.filter { $0.user == "alice" }
        #expect(alice.map(\.id) == ["offboard:alice"])
        #expect(alice.first?.command == "workstation offboard alice --stage cut --placement host")
        #expect(alice.first?.summary.hasPrefix("alice is placed on kubernetes now") == true)
        #expect(p.changes.contains { $0.id == "file:/etc/ttyd-user-map" })
        #expect(try DispatchMap.decode(d.dispatch).users["alice.smith"]?.host != nil)
        #expect(!p.changes.contains { $0.kind == .create })
    }

    /// kubernetes -> host: an account is created as for anyone new, and the workspace on record waits for its own
    /// staged offboarding (`--placement kubernetes`).
    @Test func movingToTheHostPlansTheWorkspaceOffboarding() throws {
        let s = try Self.settings()
        var host = PlannerTests.freshHost()
        host.state.workspaces["erin"] = WorkspaceRecord(
            uid: 1100,
            namespace: "workstation",
            tier: "power-user",
            since: 1
        )
        let back = Self.roster.replacingOccurrences(of: ", placement: kubernetes, uid: 1100", with: "")
        let (p, d) = try plan(back, host, settings: s)
        #expect(d.departedWorkspaces == ["erin"])
        #expect(p.changes.contains { $0.id == "account:erin" })
        let offboard = try #require(p.changes.first { $0.id == "offboard-workspace:erin" })
        #expect(offboard.command == "workstation offboard erin --stage cut --placement kubernetes")
        #expect(offboard.summary.hasPrefix("erin is placed on the host now"))
    }

    /// A departed workspace's pending change names its next stage; once archived there is nothing pending.
    @Test(arguments: [
        (WorkspaceRecord(uid: 1100, namespace: "ws", tier: "power-user", since: 1), "cut"),
        (WorkspaceRecord(uid: 1100, namespace: "ws", tier: "power-user", since: 1).with(cut: 2), "revoke"),
        (WorkspaceRecord(uid: 1100, namespace: "ws", tier: "power-user", since: 1).with(cut: 2, revoke: 3), "archive"),
        (
            WorkspaceRecord(uid: 1100, namespace: "ws", tier: "power-user", since: 1).with(
                cut: 2,
                revoke: 3,
                archive: 4
            ), nil
        ),
    ])
    func aDepartedWorkspaceWaitsForItsNextStage(_ rec: WorkspaceRecord, _ next: String?) throws {
        let s = try Self.settings()
        var host = PlannerTests.freshHost()
        host.state.workspaces["erin"] = rec
        let (p, _) = try plan(PlannerTests.roster, host, settings: s)
        let change = p.changes.first { $0.id == "offboard-workspace:erin" }
        #expect(change?.command == next.map { "workstation offboard erin --stage \($0) --placement kubernetes" })
        if next != nil { #expect(change?.safety == .revoke && change?.kind == .pending) }
    }

    /// The admission ceiling counts both placements; host memory counts only host-placed people.
    @Test func theAdmissionCeilingCountsBothPlacements() throws {
        let s = try Self.settings("capacity: {max_active_users: 1, reserve: 0}\n")
        var host = PlannerTests.freshHost()
        host.memory = MemoryInfo(total: 1 << 30, available: nil, swapTotal: 0, swapFree: 0)
        // alice (4G budget) already has her account: over the memory limit, but she is not new.
        host.passwd.append(PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o700, uid: 1000, gid: 1000)
        let (p, _) = try plan(Self.roster, host, settings: s)
        #expect(p.refusals.count == 1, "\(p.refusals)")
        #expect(
            p.refusals.first?.message.hasPrefix(
                "onboarding erin would make 2 non-admin people (1 on this host, 1 on kubernetes), over max_active_users 1"
            ) == true
        )
        // Room for two: erin is admitted although alice's host budget is over memory (erin's is the cluster's).
        let roomy = try Self.settings("capacity: {max_active_users: 2, reserve: 0}\n")
        let (p2, d2) = try plan(Self.roster, host, settings: roomy)
        #expect(p2.refusals.isEmpty, "\(p2.refusals)")
        #expect(Planner(settings: roomy).capacityLedger(d2, host).headcount == 2)
        // Once on record, erin is not new: no gate at all.
        host.state.workspaces["erin"] = WorkspaceRecord(
            uid: 1100,
            namespace: "workstation",
            tier: "power-user",
            since: 1
        )
        let (p3, _) = try plan(Self.roster, host, settings: s)
        #expect(p3.refusals.isEmpty)
    }

    /// Every apply records the kubernetes-placed people; someone back after offboarding started gets a fresh record.
    @Test func applyRecordsWorkspacesAndAReturnStartsAFreshRecord() throws {
        let s = try Self.settings()
        let r = try Roster.parse(Data(Self.roster.utf8), file: "roster.yaml", settings: s)
        var state = WorkstationState()
        LifecycleState.recordWorkspaces(&state, roster: r, settings: s, now: 10)
        #expect(
            state.workspaces["erin"]
                == WorkspaceRecord(uid: 1100, namespace: "workstation", tier: "power-user", since: 10)
        )
        LifecycleState.recordWorkspaces(&state, roster: r, settings: s, now: 20)
        #expect(state.workspaces["erin"]?.since == 10)
        state.workspaces["erin"]?.cut = 30
        LifecycleState.recordWorkspaces(&state, roster: r, settings: s, now: 40)
        #expect(state.workspaces["erin"]?.cut == nil)
        #expect(state.workspaces["erin"]?.since == 40)
    }
}

extension WorkspaceRecord {
    func with(cut: Double? = nil, revoke: Double? = nil, archive: Double? = nil) -> WorkspaceRecord {
        var r = self
        r.cut = cut
        r.revoke = revoke
        r.archive = archive
        return r
    }
}
