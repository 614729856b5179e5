import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A converged host: plan and apply spawn nothing and change nothing but workstation's own bookkeeping.
@Suite struct NoOpRunTests {
    @Test func noOpPlanAndApplySpawnNoProcess() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 12))
        let args = [
            "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path, "--json",
            "--timings",
        ]
        let first = try CLI.run(["apply"] + args)
        try #require(first.status == 0, "\(first.stderr)")
        let firstJSON = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        let spawned = firstJSON["processes_spawned"] as? Int ?? 0
        #expect(
            spawned >= 2 && spawned < 12,
            "the first apply creates every account in one systemd-sysusers run and enables every unit in one systemctl: \(spawned)"
        )
        let firstCPU = try #require(firstJSON["cpu_ms"] as? [String: Int], "apply --json reports cpu_ms")
        #expect(
            (firstCPU["tools"] ?? 0) > 0 && (firstCPU["workstation"] ?? 0) > 0,
            "cpu_ms of the first apply: \(firstCPU)"
        )
        let before = TreeSnapshot(root.path)
        for command in ["plan", "apply"] {
            let r = try CLI.run([command] + args)
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(
                obj["processes_spawned"] as? Int == 0,
                "\(command): \(String(describing: obj["processes_spawned"]))"
            )
            #expect(
                (obj["cpu_ms"] as? [String: Int])?["tools"] == 0,
                "\(command): a no-op ran no tool, yet \(String(describing: obj["cpu_ms"]))"
            )
            #expect((obj["summary"] as? [String: Any])?["actionable"] as? Int == 0)
        }
        let changed = before.differences(to: TreeSnapshot(root.path)).filter { !$0.contains("/var/lib/workstation/") }
        #expect(changed.isEmpty, "\(changed)")
    }
}
