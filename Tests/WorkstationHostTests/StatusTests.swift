import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite(.serialized) struct StatusTests {
    /// alice: two processes in one terminal session, one in another, and the t3 daemon (no terminal).
    /// bob-dev: one process. A root process and a kernel thread belong to nobody in the roster.
    func populated() throws -> CapacitySandbox {
        let s = try CapacitySandbox()
        #expect(try s.apply().succeeded)
        try s.makeHealthy()
        let alice = s.uid("alice")
        let bob = s.uid("bob-dev")
        try s.process(100, uid: alice, name: "bash", rssKiB: 4_000, session: 100, tty: 34816)
        try s.process(101, uid: alice, name: "claude", rssKiB: 400_000, session: 100, tty: 34816)
        try s.process(102, uid: alice, name: "claude", rssKiB: 600_000, session: 102, tty: 34817)
        try s.process(103, uid: alice, name: "t3", rssKiB: 430_000, session: 103, tty: 0)
        try s.process(200, uid: bob, name: "bash", rssKiB: 3_000, session: 200, tty: 34818)
        try s.process(1, uid: 0, name: "systemd", rssKiB: 12_000, session: 1, tty: 0)
        try s.process(2, uid: 0, name: "kthreadd", rssKiB: nil, session: 0, tty: 0)
        try s.systemdRunning(populated: [("t3-serve@alice.service", alice)])
        // the dispatcher's socket and the firewall as shipped (doctor checks them where systemd runs)
        try s.frontDoor()
        return s
    }

    @Test func rowsMatchTheSyntheticProcesses() throws {
        let s = try populated()
        let rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.map(\.osUser) == ["carol", "alice", "bob-dev"])
        let alice = try #require(rows.first { $0.osUser == "alice" })
        #expect(alice.tier == .powerUser)
        #expect(alice.account == .active)
        #expect(alice.residentBytes == (4_000 + 400_000 + 600_000 + 430_000) * 1024)
        #expect(alice.processes == 4)
        #expect(alice.sessions == 2)
        #expect(alice.budgetBytes == 4 << 30)
        #expect(alice.budgetShare == Double((4_000 + 400_000 + 600_000 + 430_000) * 1024) / Double(4 << 30))
        #expect(alice.unit == "active")
        #expect(alice.port == 3775)  // carol, first in the roster, holds 3774
        #expect(alice.clone == .present)
        let bob = try #require(rows.first { $0.osUser == "bob-dev" })
        #expect(bob.residentBytes == 3_000 * 1024 && bob.sessions == 1)
        #expect(bob.unit == "inactive")
        #expect(bob.budgetBytes == 3 << 30)
        // carol is an admin without an account on this host: no budget, no figures.
        let carol = try #require(rows.first { $0.osUser == "carol" })
        #expect(carol.account == .missing && carol.budgetBytes == nil && carol.residentBytes == 0)
    }

    /// With infra clones off (no `infra_repo.url`, no `repo:`), no clone is owed: nothing at `~/code` is "-" (nil),
    /// not "missing"; what is there is still reported. With clones on, nothing there is "missing".
    @Test(arguments: [(nil as String?, nil as CloneState?), ("https://git.example.org/infra.git", .missing)])
    func aMissingCloneIsReportedOnlyWhenOneIsOwed(_ url: String?, _ expected: CloneState?) throws {
        let s = try populated()
        let home = try #require(
            s.root.read("/etc/passwd").flatMap { data in
                String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("alice:") }
            }
        ).split(separator: ":")[5]
        try? FileManager.default.removeItem(atPath: s.root.path("\(home)/code"))
        var inputs = try s.inputs()
        inputs.settings.infraRepo.url = url
        let rows = try StatusReader(root: s.root, inputs: inputs).rows()
        #expect(rows.first { $0.osUser == "alice" }?.clone == expected)
        #expect(rows.first { $0.osUser == "carol" }?.clone == nil)
    }

    @Test func accountStatesComeFromShadow() throws {
        let s = try populated()
        // alice: password hash locked with `!`; bob-dev: expired on day 1.
        var shadow = String(decoding: s.root.read("/etc/shadow")!, as: UTF8.self)
        shadow =
            shadow.split(separator: "\n").map { line -> String in
                var f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if f[0] == "alice" { f[1] = "!$6$salt$hash" }
                if f[0] == "bob-dev" { f[7] = "1" }
                return f.joined(separator: ":")
            }.joined(separator: "\n") + "\n"
        try s.write("/etc/shadow", shadow, mode: 0o640)
        var rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.first { $0.osUser == "alice" }?.account == .locked)
        #expect(rows.first { $0.osUser == "bob-dev" }?.account == .expired)
        try s.write(
            "/etc/shadow",
            shadow.split(separator: "\n").filter { !$0.hasPrefix("alice:") }.joined(separator: "\n") + "\n",
            mode: 0o640
        )
        rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        #expect(rows.first { $0.osUser == "alice" }?.account == .noShadow)
    }

    @Test func tableAndJSONCarryTheSameFigures() throws {
        let s = try populated()
        let rows = try StatusReader(root: s.root, inputs: try s.inputs()).rows()
        let table = StatusReader.table(rows)
        let aliceLine = try #require(table.split(separator: "\n").first { $0.hasPrefix("alice ") })
        let cells = aliceLine.split(separator: " ").map(String.init)
        #expect(
            cells == ["alice", "power-user", "active", "active", "3775", "2", "1.4G", "4G", "34%", "4/8192", "present"]
        )
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(StatusReader.json(rows).utf8)) as? [String: Any]
        )
        let users = try #require(json["users"] as? [[String: Any]])
        let a = try #require(users.first { $0["os_user"] as? String == "alice" })
        #expect((a["resident_bytes"] as? NSNumber)?.uint64Value == (4_000 + 400_000 + 600_000 + 430_000) * 1024)
        #expect(a["sessions"] as? Int == 2)
    }
}
