import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct JournalTornTailTests {
    /// A temp root with an empty state directory.
    func tempRoot() throws -> TempRoot {
        let temp = try TempRoot("journal")
        try temp.createDirectory("/var/lib/workstation")
        return temp
    }

    /// A journal cut short by a power loss ends in a fragment; the next run's entries still parse on their own lines.
    @Test func aTornLastLineIsTerminatedBeforeTheNextEntry() throws {
        let temp = try tempRoot()
        let dir = temp.path
        let path = dir + "/var/lib/workstation/journal.jsonl"
        try Data(#"{"change":"account:alice","error":null,"fields":[],"re"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(Journal.read(try Data(contentsOf: URL(fileURLWithPath: path))).tornTail != nil)
        let journal = try Journal(root: HostRoot(dir), settings: Settings(), run: "r2")
        journal.record(
            Change(
                id: "group:workstation",
                user: nil,
                kind: .create,
                safety: .additive,
                summary: "create group workstation"
            ),
            result: "ok"
        )
        let read = Journal.read(try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(read.tornTail == nil)
        #expect(read.entries.map(\.change) == ["group:workstation"])
        #expect(read.malformed.count == 1 && read.malformed[0].line == 1)
    }

    @Test func wholeJournalReadsEveryEntry() throws {
        let temp = try tempRoot()
        let dir = temp.path
        let journal = try Journal(root: HostRoot(dir), settings: Settings(), run: "r1")
        for i in 0..<3 {
            journal.record(
                Change(id: .account("u\(i)"), user: "u\(i)", kind: .create, safety: .additive, summary: "create u\(i)"),
                result: "ok"
            )
        }
        let read = Journal.read(try Data(contentsOf: URL(fileURLWithPath: dir + "/var/lib/workstation/journal.jsonl")))
        #expect(read.entries.map(\.change) == ["account:u0", "account:u1", "account:u2"])
        #expect(read.malformed.isEmpty && read.tornTail == nil)
    }
}
