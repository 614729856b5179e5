import Foundation
import WorkstationTestSupport

// The old names of what WorkstationTestSupport now provides, and of renamed suites: kept so that tests written
// against them still compile (each says what replaced it). Delete this file once no call site is left.

@available(*, deprecated, renamed: "ProcessOutput")
typealias CLIResult = ProcessOutput

@available(*, deprecated, renamed: "TreeSnapshot")
typealias RootSnapshot = TreeSnapshot

@available(*, deprecated, renamed: "ExistingHostStateTests")
typealias HostStateTests = ExistingHostStateTests

@available(*, deprecated, renamed: "SettingsWideningEndToEndTests")
typealias SettingsHostileEndToEndTests = SettingsWideningEndToEndTests

@available(*, deprecated, renamed: "RosterFuzzTests")
typealias FuzzTests = RosterFuzzTests

@available(*, deprecated, renamed: "ApplyPropertyTests")
typealias PropertyTests = ApplyPropertyTests

extension CLI {
    @available(*, deprecated, message: "use TestProcess.run(_:_:)")
    static func runTool(_ exe: String, _ args: [String]) throws -> ProcessOutput { try TestProcess.run(exe, args) }

    @available(*, deprecated, message: "use TestProcess.accountTool(_:prefix:_:)")
    static func accountTool(_ name: String, prefix: String, _ args: [String]) throws -> ProcessOutput {
        try TestProcess.accountTool(name, prefix: prefix, args)
    }

    @available(*, deprecated, renamed: "Repository.workstationBinary")
    static var binary: String { Repository.workstationBinary }

    @available(*, deprecated, renamed: "Repository.examples")
    static var examples: URL { Repository.examples }
}

@available(*, deprecated, message: "use TestProcess.shell(_:environment:)")
func shell(_ script: String, env: [String: String] = [:]) throws -> ProcessOutput {
    try TestProcess.shell(script, environment: env)
}

@available(*, deprecated, message: "use TreeSnapshot(_:)")
func tree(_ dir: String) -> TreeSnapshot { TreeSnapshot(dir) }

@available(*, deprecated, message: "use TreeSnapshot(_:)")
func treeSnapshot(_ root: String) -> TreeSnapshot { TreeSnapshot(root) }
