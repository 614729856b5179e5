import Foundation
import Testing

@testable import WorkstationCore

/// The planner on hand-made snapshots, where a fixture directory (Fixtures/) would not say more.
@Suite struct PlannerTests {
    /// An existing account whose home is missing: ~/.claude was planned under it and failed on every run.
    @Test func noInheritanceChangesUnderAMissingHome() {
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "u0", uid: 1000, gid: 1000, home: "/home/u0", shell: "/bin/bash")]
        let settings = Settings()
        let d = desire(roster: Roster.generated(1), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        #expect(
            !plan.actionable.contains { $0.id.hasPrefix("dir:/home/u0") || $0.id.hasPrefix("link:/home/u0") },
            "\(plan.actionable.map(\.id))"
        )
        #expect(plan.changes.contains { $0.id == "home:u0" && $0.kind == .conflict })
    }
}
