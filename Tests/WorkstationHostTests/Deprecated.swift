import Foundation
import WorkstationTestSupport

// The old names of what WorkstationTestSupport now provides, and of renamed suites: kept so that tests written
// against them still compile (each says what replaced it). Delete this file once no call site is left.

@available(*, deprecated, message: "use TestProcess.run(_:_:) (or TestProcess.accountTool for useradd and friends)")
func runTool(_ argv: [String]) throws -> (Int32, String) {
    let r = try TestProcess.run("/usr/bin/env", argv)
    return (r.status, r.stdout + r.stderr)
}

@available(*, deprecated, renamed: "DoctorMachineChecksTests")
typealias DoctorHostTests = DoctorMachineChecksTests

@available(*, deprecated, renamed: "UnitRestartTests")
typealias ExecutorUnitTests = UnitRestartTests
