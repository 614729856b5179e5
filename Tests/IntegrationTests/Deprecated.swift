import Foundation
import WorkstationTestSupport

// The old names of what WorkstationTestSupport now provides: kept so that tests written against them still compile
// (each says what replaced it). Delete this file once no call site is left.

@available(*, deprecated, renamed: "TestRequest")
typealias RecordedRequest = TestRequest

@available(*, deprecated, message: "use CLI.run(_:env:) for workstation, TestProcess.run(_:_:environment:) for a tool")
func runProgram(_ argv: [String], env: [String: String] = [:]) throws -> ProcessOutput {
    try TestProcess.run(
        argv[0],
        Array(argv.dropFirst()),
        environment: TestProcess.inheritedEnvironment(adding: ["NO_COLOR": "1"].merging(env) { $1 })
    )
}

@available(*, deprecated, renamed: "Repository.workstationBinary")
var workstationBinary: String { Repository.workstationBinary }

extension Sandbox {
    /// Every file under the root: path -> bytes (links as `-> target`, directories as `dir`).
    @available(*, deprecated, message: "use snapshot(), which compares mode and owner too")
    func fingerprint() -> [String: Data] {
        snapshot().entries.filter { !$0.key.isEmpty }.mapValues { e in
            e.linkTarget.map { Data(("-> " + $0).utf8) }
                ?? (e.kind == .directory ? Data("dir".utf8) : e.content ?? Data())
        }
    }
}
