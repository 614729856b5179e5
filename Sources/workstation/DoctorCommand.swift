import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Run every health check; exit 1 when any fails. Each finding names its fix. Reads only.")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "Print every finding as JSON.")
    var json = false

    @Flag(help: "Also list the checks that passed.")
    var verbose = false

    func run() throws {
        let report: DoctorReport
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            // The one check that spawns (nft list table) runs on the live root only.
            report = try Doctor(root: rootOptions.hostRoot, inputs: loaded, runner: rootOptions.hostRoot.isSystem ? ProcessRunner() : nil).run()
        } catch {
            throw reportedExit(error)
        }
        if json {
            let findings: [[String: Any]] = report.findings.map { f in
                ["check": f.check, "user": f.user ?? NSNull(), "severity": f.severity.rawValue, "message": f.message, "fix": f.fix ?? NSNull()]
            }
            sayJSON(jsonText(["findings": findings, "failures": report.failures, "warnings": report.warnings,
                               "ok": report.findings.count - report.failures - report.warnings]))
        } else {
            for f in report.findings where verbose || f.severity != .ok {
                let tag = f.severity == .fail ? "FAIL" : f.severity == .warn ? "warn" : "ok  "
                say("\(tag) \(f.check)\(f.user.map { " \(printable($0))" } ?? ""): \(printable(f.message))")
                if let fix = f.fix, f.severity != .ok { say("     fix: \(printable(fix))") }
            }
            let ok = report.findings.count - report.failures - report.warnings
            say("Doctor: \(report.failures) failed, \(report.warnings) warnings, \(ok) passed.")
        }
        if !report.healthy { throw ExitCode(1) }
    }
}
