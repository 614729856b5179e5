import Foundation
import Testing
import WorkstationTestSupport

/// `workstation dispatch` as the unit runs it: settings that would let a local account act as another person, or a
/// settings file that is not there, stop it before it listens (exit 1, the place and the fix named, no socket made).
@Suite struct DispatchCommandEndToEndTests {
    @Test(arguments: [
        (
            "dispatch:\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n",
            "workstation.yaml:2:11: error: dispatch.listen must be unix:/PATH"
        ),
        (
            "dispatch:\n  identity: jwt\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n",
            "workstation.yaml:2:13: error: identity: jwt needs a dispatch.jwt section"
        ),
    ])
    func unsafeSettingsNeverListen(_ yaml: String, _ expected: String) throws {
        let dir = try TempRoot("dispatch")
        try dir.write("/workstation.yaml", yaml)
        let before = dir.snapshot()
        let r = try CLI.run(["dispatch", "--settings", dir.file("/workstation.yaml")])
        #expect(r.status == 1)
        #expect(r.stderr.contains(dir.path + "/" + expected), "\(r.stderr)")
        #expect(dir.snapshot() == before, "nothing was created or changed: \(before.differences(to: dir.snapshot()))")
    }

    @Test func aNamedSettingsFileThatIsNotThereIsAnError() throws {
        let r = try CLI.run(["dispatch", "--settings", "/nonexistent/workstation.yaml"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("the settings file /nonexistent/workstation.yaml does not exist; check --settings"))
    }
}
