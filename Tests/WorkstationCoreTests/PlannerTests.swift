import Foundation
import Testing

@testable import WorkstationCore

/// The planner and its renderer on hand-made snapshots, where a fixture case (Fixtures/, run by PlannerFixtures)
/// would not say more: the layout of the human rendering and the line diffs of regenerated files.
@Suite struct PlannerTests {
    /// carol (admin), alice (power-user) and bob (namespace-owner): the roster other suites plan against.
    static let roster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
          bob: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }
        """

    /// A fresh Debian host: base accounts, a sudo group, the t3 template installed.
    static func freshHost() -> HostSnapshot {
        var s = HostSnapshot()
        s.passwd = [PasswdEntry(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash")]
        s.groups = [
            GroupEntry(name: "root", gid: 0, members: []), GroupEntry(name: "sudo", gid: 27, members: []),
            GroupEntry(name: "docker", gid: 998, members: []), GroupEntry(name: "video", gid: 44, members: []),
        ]
        s.paths["/etc/systemd/system/t3-serve@.service"] = PathState(kind: .file, mode: 0o644)
        return s
    }

    func plan(_ yaml: String, _ host: HostSnapshot, settings: Settings = Settings()) throws -> (Plan, DesiredState) {
        let r = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: r, settings: settings, snapshot: host)
        #expect(d.diagnostics.isEmpty, "\(d.diagnostics)")
        return (Planner(settings: settings).plan(desired: d, observed: host), d)
    }

    /// `host` as a successful apply of `d` leaves it (accounts, groups, homes, links, drop-ins, units, derived files,
    /// recorded ports), for suites that plan a second run.
    func converged(_ host: HostSnapshot, _ d: DesiredState, settings: Settings = Settings()) -> HostSnapshot {
        var s = host
        for u in d.users {
            if s.account(u.osUser) == nil {
                s.passwd.append(PasswdEntry(name: u.osUser, uid: u.uid, gid: u.uid, home: u.home, shell: "/bin/bash"))
            }
            for g in u.groups {
                if let i = s.groups.firstIndex(where: { $0.name == g }) {
                    if !s.groups[i].members.contains(u.osUser) { s.groups[i].members.append(u.osUser) }
                } else {
                    s.groups.append(GroupEntry(name: g, gid: 900 + s.groups.count, members: [u.osUser]))
                }
            }
            s.paths[u.home] = PathState(kind: .directory, mode: 0o700, uid: u.uid, gid: u.uid)
            s.paths[u.home + "/.claude"] = PathState(kind: .directory, mode: 0o700, uid: u.uid, gid: u.uid)
            for item in settings.inheritedItems {
                s.paths["\(u.home)/.claude/\(item)"] = PathState(
                    kind: .symlink,
                    linkTarget: "\(settings.configBase)/\(item)"
                )
            }
            let planner = Planner(settings: settings)
            if let content = planner.sliceDropInContent(for: u.entry) {
                s.paths[planner.sliceDropInPath(uid: u.uid)] = PathState(kind: .file, mode: 0o644, content: content)
            }
            for unit in settings.units {
                s.paths[planner.dropInPath(unit, u.osUser)] = PathState(
                    kind: .file,
                    mode: 0o644,
                    content: planner.dropInContent(unit, u)
                )
                s.enabledUnits.insert(unit.instance(u.osUser))
            }
        }
        s.paths[settings.derived.ttydUserMap] = PathState(kind: .file, mode: 0o644, content: d.ttydUserMap)
        s.paths[settings.derived.dispatch] = PathState(kind: .file, mode: 0o644, content: d.dispatch)
        s.state.ports = d.ports
        return s
    }

    /// A profile.d snippet is a root file like the set-up's: written, regenerated, left alone when equal, and never
    /// written through a link or over a directory someone else made there.
    @Test(arguments: [
        (PathState.absent, [ChangeKind.create], ["line"]),
        (PathState(kind: .file, mode: 0o644, content: Data("export A=1\n".utf8)), [], []),
        (PathState(kind: .file, mode: 0o644, content: Data("export A=0\n".utf8)), [.update], ["line", "line"]),
        (PathState(kind: .file, mode: 0o666, content: Data("export A=1\n".utf8)), [.update], ["mode"]),
        (PathState(kind: .symlink, linkTarget: "/home/alice/evil.sh"), [.conflict], []),
        (PathState(kind: .directory, mode: 0o755), [.conflict], []),
    ])
    func profileSnippetIsARootFile(_ there: PathState, _ kinds: [ChangeKind], _ fields: [String]) {
        var host = Self.freshHost()
        let path = "/etc/profile.d/workstation-vault.sh"
        if there.kind != .absent { host.paths[path] = there }
        let changes = Planner(settings: Settings()).profileSnippetChanges(
            path,
            Data("export A=1\n".utf8),
            host,
            what: "loads the Vault helper at login"
        )
        #expect(changes.map(\.kind) == kinds)
        #expect(changes.allSatisfy { $0.kind == .conflict ? $0.action == nil : $0.action != nil })
        #expect(changes.flatMap(\.fields).map(\.field) == fields)
    }

    /// A shadow utility's suggested command acts on the sandbox root the run used (`--root DIR`, quoted when needed);
    /// other commands are left as they are.
    @Test(arguments: [
        ("gpasswd -d alice docker", "/tmp/sandbox", "gpasswd --root /tmp/sandbox -d alice docker"),
        ("usermod -L alice", "/srv/my root", "usermod --root '/srv/my root' -L alice"),
        ("workstation offboard alice --stage cut", "/tmp/sandbox", "workstation offboard alice --stage cut"),
        ("kubectl delete rolebindings -l x=alice", "/tmp/sandbox", "kubectl delete rolebindings -l x=alice"),
        ("gpasswdx -d alice docker", "/tmp/sandbox", "gpasswdx -d alice docker"),
    ])
    func suggestedShadowCommandsActOnTheSandboxRoot(_ command: String, _ root: String, _ expected: String) {
        let c = Change(
            id: .violation("alice", "docker"),
            user: "alice",
            kind: .pending,
            safety: .revoke,
            summary: "s",
            command: command
        )
        #expect(c.suggesting(onRoot: root).command == expected)
    }

    @Test func humanRendererGroupsPerUserWithSymbolsAndSummary() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o755, uid: 1000, gid: 1000)
        host.groups[host.groups.firstIndex { $0.name == "sudo" }!].members = ["alice"]
        let (p, _) = try plan("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n", host)
        let text = PlanRenderer.human(p)
        #expect(text.contains("\nalice\n  ! alice is in group sudo"))
        #expect(text.contains("  ~ secure home /home/alice [tighten]\n      mode: 0755 -> 0700\n"))
        #expect(text.contains("  ! alice is in group sudo, which a power-user must not hold [revoke]"))
        #expect(text.contains("      run: gpasswd -d alice sudo\n"))
        #expect(text.contains("Plan: 14 to create, 1 to update, 1 pending revoke/destroy, 0 conflicts.\n"))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(PlanRenderer.json(p).utf8)) as? [String: Any]
        )
        #expect((json["summary"] as? [String: Int])?["pending"] == 1)
    }

    @Test func lineDiffsReadInFileOrder() {
        let before = "a\nb\nc\nd\n"
        let after = "a\nx\nd\ny\n"
        #expect(
            lineDiff(before, after) == [
                FieldChange("line", "b", nil), FieldChange("line", "c", nil),
                FieldChange("line", nil, "x"), FieldChange("line", nil, "y"),
            ]
        )
    }
}
