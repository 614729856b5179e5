import Foundation
import Testing
import WorkstationTestSupport

/// `status` and `metrics` through the binary while alice is offboarded stage by stage.
@Suite(.serialized) struct OffboardingObservabilityEndToEndTests {
    @Test func statusAndMetricsFollowEachStage() throws {
        let h = try LifecycleHost()
        let options = " --roster \(h.roster) --settings \(h.settings) --root \(h.root.path)"
        var status = try h.run(["status"])
        #expect(status.status == 0 && !status.stdout.contains("Mid-offboarding"), "\(status.stdout)")

        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let version = try String(contentsOf: PackagingEndToEndTests.versionFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        for (stage, done, next) in [(nil, "none", "cut"), ("cut", "cut", "revoke"), ("revoke", "revoke", "archive")]
            as [(String?, String, String)]
        {
            if let stage { #expect(try h.run(["offboard", "alice", "--stage", stage]).status == 0, "\(stage)") }
            status = try h.run(["status"])
            #expect(status.status == 0, "\(status.stderr)")
            let line = try #require(
                status.stdout.split(separator: "\n").first { $0.hasPrefix("alice ") },
                "\(status.stdout)"
            )
            let command =
                "workstation offboard alice --stage \(next)\(next == "archive" ? " --confirm alice" : "")" + options
            #expect(line.hasSuffix(command), "\(line)")
            #expect(line.contains("  \(done)  "), "\(line)")
            let json = try h.run(["status", "--json"])
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let row = try #require((obj["offboarding"] as? [[String: Any]])?.first)
            #expect(row["next_stage"] as? String == next && row["command"] as? String == command)

            let metrics = try h.run(["metrics"])
            #expect(metrics.status == 0, "\(metrics.stderr)")
            #expect(metrics.stdout.contains("\nworkstation_offboarding_pending 1\n"))
            #expect(
                metrics.stdout.contains(
                    "\nworkstation_offboarding_pending_user{user=\"alice\",next_stage=\"\(next)\"} 1\n"
                )
            )
            #expect(metrics.stdout.contains("\nworkstation_build_info{version=\"\(version)\"} 1\n"))
        }
        #expect(try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"]).status == 0)
        status = try h.run(["status"])
        #expect(!status.stdout.contains("Mid-offboarding"), "\(status.stdout)")
        #expect(try h.run(["metrics"]).stdout.contains("\nworkstation_offboarding_pending 0\n"))
    }
}
