import Foundation
import Testing

@testable import WorkstationCore

/// uids and ports come from their ranges until none is left; then a located error, never one handed out twice.
@Suite struct UidAndPortAllocationTests {
    /// More people than ports: the last ones were all handed the range's last port (two people, one port).
    @Test func exhaustedPortRangeIsALocatedErrorNotASharedPort() {
        var settings = Settings()
        settings.units = [PerUserUnit(template: "t3-serve@", portRange: 4000...4009, portEnvironment: "T3CODE_PORT")]
        let d = desire(roster: Roster.generated(11), settings: settings, snapshot: HostSnapshot())
        #expect(d.diagnostics.count == 1)
        #expect(d.diagnostics.first?.message.contains("no free port left for 'u10'") == true, "\(d.diagnostics)")
        #expect(d.diagnostics.first?.location.line == 12)
        let within = desire(roster: Roster.generated(10), settings: settings, snapshot: HostSnapshot())
        #expect(within.diagnostics.isEmpty)
        #expect(Set(within.users.compactMap { $0.ports["t3-serve@"] }).count == 10)
    }

    @Test func exhaustedUidRangeIsALocatedError() {
        var snap = HostSnapshot()
        snap.uidRange = 1000...1002
        let d = desire(roster: Roster.generated(4), settings: Settings(), snapshot: snap)
        #expect(d.diagnostics.contains { $0.message.contains("no free uid left for 'u3'") }, "\(d.diagnostics)")
    }
}
