import Foundation
import Testing
import WorkstationTestSupport

/// `workstation offboard alice bob-dev --stage cut`: several people cut in one run, every gate checked for all of
/// them before anything changes.
@Suite(.serialized) struct OffboardManyEndToEndTests {
    func leaveBoth(_ h: LifecycleHost) throws {
        try """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }

        """.write(toFile: h.roster, atomically: true, encoding: .utf8)
        #expect(try h.run(["apply"]).status == 0)
    }

    @Test func twoPeopleAreCutInOneRunEachRecordedAndJournaled() throws {
        let h = try LifecycleHost()
        try leaveBoth(h)
        #expect(h.wants.contains("t3-serve@alice.service") && h.wants.contains("t3-serve@bob-dev.service"))
        let carolShadow = h.line("/etc/shadow", "carol")
        let r = try h.run(["offboard", "alice", "bob-dev", "--stage", "cut", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["users"] as? [String] == ["alice", "bob-dev"] && json["user"] == nil)
        #expect(
            Set(json["applied"] as? [String] ?? []) == [
                "unit:t3-serve@alice.service", "unit:t3-serve@bob-dev.service", "login:alice", "login:bob-dev",
            ]
        )
        #expect(!h.wants.contains("t3-serve@alice.service") && !h.wants.contains("t3-serve@bob-dev.service"))
        for user in ["alice", "bob-dev"] {
            let shadow = try #require(h.line("/etc/shadow", user)).split(
                separator: ":",
                omittingEmptySubsequences: false
            )
            #expect(shadow[7] == "1", "\(user) expired")
            let rec = try #require((try h.state()["offboarding"] as? [String: Any])?[user] as? [String: Any])
            #expect((rec["cut"] as? [String: Any])?["completed"] as? Bool == true, "\(user): \(rec)")
        }
        #expect(h.line("/etc/shadow", "carol") == carolShadow)
        let journal = JournalLines.lines(h)
        for user in ["alice", "bob-dev"] {
            #expect(
                journal.contains {
                    $0.contains("\"change\":\"offboard:\(user):cut\"") && $0.contains("\"result\":\"ok\"")
                }
            )
            #expect(
                journal.contains { $0.contains("\"change\":\"login:\(user)\"") && $0.contains("\"result\":\"ok\"") }
            )
        }
        // The same command again has nothing to do; the next stage still takes one person.
        let again = try h.run(["offboard", "alice", "bob-dev", "--stage", "cut"])
        #expect(
            again.status == 0 && again.stdout.contains("stage cut of bob-dev is recorded already"),
            "\(again.stdout)"
        )
        #expect(try h.run(["offboard", "alice", "--stage", "revoke"]).status == 0)
    }

    @Test func oneStillInTheRosterRefusesTheWholeRunAndChangesNothing() throws {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(["offboard", "alice", "bob-dev", "--stage", "cut"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("'bob-dev' is still in the roster") && !r.stderr.contains("'alice'"), "\(r.stderr)")
        #expect(TreeSnapshot(h.root.path) == before)
    }

    @Test(arguments: ["revoke", "archive"])
    func laterStagesTakeOnePersonPerRun(_ stage: String) throws {
        let h = try LifecycleHost()
        try leaveBoth(h)
        let before = TreeSnapshot(h.root.path)
        let r = try h.run(
            ["offboard", "alice", "bob-dev", "--stage", stage] + (stage == "archive" ? ["--confirm", "alice"] : [])
        )
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("takes one os_user at a time"), "\(r.stderr)")
        #expect(TreeSnapshot(h.root.path) == before)
    }
}

enum JournalLines {
    static func lines(_ h: LifecycleHost) -> [String] {
        (h.root.read("/var/lib/workstation/journal.jsonl") ?? "").split(separator: "\n").map(String.init)
    }
}
