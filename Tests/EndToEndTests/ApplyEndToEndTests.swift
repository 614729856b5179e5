import Foundation
import Testing

@Suite(.serialized) struct ApplyEndToEndTests {
    @Test func firstApplyConvergesAndSecondPlanIsEmpty() throws {
        let root = try TempRoot()
        let roster = CLI.examples.appendingPathComponent("roster.yaml").path
        let settings = CLI.examples.appendingPathComponent("workstation.yaml").path
        let first = try CLI.run(["apply", "--roster", roster, "--settings", settings, "--root", root.path, "--init-root"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try CLI.run(["plan", "--roster", roster, "--settings", settings, "--root", root.path, "--detailed-exitcode"])
        #expect(second.status == 0, "\(second.stdout)")
        #expect(root.read("/etc/ttyd-user-map")?.contains("alice.smith=alice\n") == true)
    }
}
