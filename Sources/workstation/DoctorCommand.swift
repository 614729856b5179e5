import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Run every health check; exit 1 when any fails. Each finding names its fix. Reads only."
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @OptionGroup var output: JSONOptions

    @Flag(help: "Also list the checks that passed.")
    var verbose = false

    func run() throws {
        let reporter = output.reporter("doctor", options: commandOptions(inputs, rootOptions))
        let report: DoctorReport
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            // The one check that spawns (nft list table) runs on the live root only.
            report = try Doctor(
                root: rootOptions.hostRoot,
                inputs: loaded,
                runner: rootOptions.hostRoot.isSystem ? ProcessRunner() : nil
            ).run()
        } catch {
            throw reporter.failure(error)
        }
        let code = report.healthy ? ExitStatus.ok : ExitStatus.error
        if reporter.json {
            let findings: [[String: Any]] = report.findings.map { f in
                [
                    "check": f.check, "user": f.user ?? NSNull(), "severity": f.severity.rawValue, "message": f.message,
                    "fix": f.fix ?? NSNull(),
                ]
            }
            reporter.emit(
                [
                    "findings": findings, "failures": report.failures, "warnings": report.warnings,
                    "ok": report.findings.count - report.failures - report.warnings, "healthy": report.healthy,
                ],
                exitCode: code
            )
        } else {
            for f in report.findings where verbose || f.severity != .ok {
                let tag = f.severity == .fail ? "FAIL" : f.severity == .warn ? "warn" : "ok  "
                say(reporter.text("\(tag) \(f.check)\(f.user.map { " \($0)" } ?? ""): \(f.message)"))
                if let fix = f.fix, f.severity != .ok { say(reporter.text("     fix: \(fix)")) }
            }
            let ok = report.findings.count - report.failures - report.warnings
            say("Doctor: \(report.failures) failed, \(report.warnings) warnings, \(ok) passed.")
        }
        if code != ExitStatus.ok { throw ExitCode(code) }
    }
}
