import Foundation
import Testing

@testable import WorkstationCore

/// The planner and its renderer on hand-made snapshots, where a fixture case (Fixtures/, run by PlannerFixtures)
/// would not say more: the layout of the human rendering and the line diffs of regenerated files.
@Suite struct PlannerTests {
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
