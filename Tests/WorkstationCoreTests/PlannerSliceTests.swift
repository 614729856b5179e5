import Foundation
import Testing

@testable import WorkstationCore

/// A large roster is planned in slices on several threads; the joined slices must be the plan of one pass.
@Suite struct PlannerSliceTests {
    @Test func slicedPlanningEqualsOnePass() throws {
        var host = PlannerTests.freshHost()
        // Some people exist already (with a hand-made forbidden membership), some are new: every kind of change.
        let yaml =
            "users:\n"
            + (0..<230).map { "  u\($0): { authentik_user: u\($0), k8s_user: u\($0), tier: power-user }" }.joined(
                separator: "\n"
            )
        for i in stride(from: 0, to: 230, by: 3) {
            host.passwd.append(
                PasswdEntry(name: "u\(i)", uid: 2000 + i, gid: 2000 + i, home: "/home/u\(i)", shell: "/bin/bash")
            )
            host.paths["/home/u\(i)"] = PathState(kind: .directory, mode: 0o755, uid: 0, gid: 0)
        }
        host.groups[1].members = ["u3", "u30"]
        var settings = Settings()
        settings.units[0].portRange = 20000...29999
        let roster = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: roster, settings: settings, snapshot: host)
        #expect(d.diagnostics.isEmpty)
        let planner = Planner(settings: settings)
        let one = planner.perUserSlices(d.users, host, slices: 1)
        #expect(one.count == 1)
        for n in [2, 3, 7] {
            let parts = planner.perUserSlices(d.users, host, slices: n)
            #expect(parts.count == n)
            #expect(parts.flatMap(\.plan.changes) == one[0].plan.changes)
            #expect(parts.flatMap(\.budgets) == one[0].budgets)
            #expect(parts.flatMap(\.units) == one[0].units)
            #expect(Array(Set(parts.flatMap(\.plan.notes))).sorted() == Array(Set(one[0].plan.notes)).sorted())
        }
        #expect(one[0].plan.changes.contains { $0.id == "violation:u3:sudo" })
        #expect(one[0].plan.changes.contains { $0.id == "account:u1" })
        #expect(one[0].units.contains { $0.id == "unit:t3-serve@u1.service" })
        // And the whole plan (which slices above 200 people) has them in roster order, budgets and units last.
        let full = planner.plan(desired: d, observed: host)
        let accounts = full.changes.filter { $0.id.description.hasPrefix("account:") }.map(\.id.description)
        #expect(
            accounts == one[0].plan.changes.filter { $0.id.description.hasPrefix("account:") }.map(\.id.description)
        )
        #expect(Array(full.changes.suffix(one[0].units.count)) == one[0].units)
    }
}
