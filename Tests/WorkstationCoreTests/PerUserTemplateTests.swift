import Foundation
import Testing

@testable import WorkstationCore

@Suite struct PerUserTemplateTests {
    @Test func setupHostInstallsTheTemplateOnlyWhereNoneIsInstalled() throws {
        let planner = Planner(settings: Settings())
        let (fresh, _) = planner.setupHostPlan(
            desired: DesiredState(),
            observed: HostSnapshot(),
            host: SetupHostObservation()
        )
        let install = try #require(fresh.changes.first { $0.id == "file:/etc/systemd/system/t3-serve@.service" })
        #expect(install.kind == .create)
        guard case .writeFile(_, let content, let mode)? = install.action else {
            Issue.record("the template is not written")
            return
        }
        let text = String(decoding: content, as: UTF8.self)
        #expect(text.contains("User=%i\n") && text.contains("--port ${T3CODE_PORT}") && mode == 0o644)
        // An operator's own template, anywhere on the search path, is never replaced.
        for dir in planner.unitSearchPath {
            var host = SetupHostObservation()
            host.files[dir + "/t3-serve@.service"] = PathState(
                kind: .file,
                mode: 0o644,
                content: Data("[Service]\nExecStart=/opt/t3\n".utf8)
            )
            let (plan, _) = planner.setupHostPlan(desired: DesiredState(), observed: HostSnapshot(), host: host)
            #expect(!plan.changes.contains { $0.id.description.hasSuffix("t3-serve@.service") }, "\(dir)")
        }
    }
}
