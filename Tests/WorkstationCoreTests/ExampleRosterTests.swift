import Foundation
import Testing

@testable import WorkstationCore

@Suite struct ExampleRosterTests {
    @Test func exampleRosterParsesWithEveryTier() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Examples/roster.yaml"
        )
        let roster = try Roster.parse(try Data(contentsOf: url), file: "roster.yaml")
        #expect(roster.entries.map(\.osUser) == ["carol", "alice", "bob-dev"])
        #expect(roster["carol"]?.isAdopted == true)
        #expect(roster["bob-dev"]?.namespaces == ["team-bob"])
    }
}
