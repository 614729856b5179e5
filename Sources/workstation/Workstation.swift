import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

@main
struct Workstation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workstation",
        abstract: "Turn one shared Linux host into a multi-user workstation, driven by a roster.",
        discussion: """
            Exit codes: 0 ok or nothing to do; 1 error; 2 changes pending (plan --detailed-exitcode); \
            3 refused by a safety gate (lockout guard, capacity, idle gate).
            """,
        version: workstationVersion,
        subcommands: [
            ValidateCommand.self,
            PlanCommand.self,
            ApplyCommand.self,
            DispatchCommand.self,
            TtydLoginCommand.self,
            CloneStatusCommand.self,
            RenderCommand.self,
            DoctorCommand.self,
            StatusCommand.self,
            MetricsCommand.self,
            SetupHostCommand.self,
            OffboardCommand.self,
            CutoverCommand.self,
            RollbackCommand.self,
        ])
}

/// The release version: `Sources/workstation/VERSION` (one line, e.g. `0.1.0`), compiled into the binary by SwiftPM
/// (`resources: [.embedInCode("VERSION")]` in Package.swift), so `workstation --version`, the `workstation_build_info`
/// metric and the Debian package (scripts/package) always agree.
let workstationVersion = String(decoding: PackageResources.VERSION, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)

/// --roster and --settings, shared by every command that reads the inputs.
struct InputOptions: ParsableArguments {
    @Option(help: "Roster file (default: <root>/etc/workstation/roster.yaml).")
    var roster: String?

    @Option(help: "Settings file (default: <root>/etc/workstation/workstation.yaml; optional, every key has a default).")
    var settings: String?

    var paths: InputPaths { InputPaths(roster: roster, settings: settings) }
}

/// --root: every path read or written is under DIR.
struct RootOptions: ParsableArguments {
    @Option(help: "Host root: every path read or written is under DIR; the real tools get --prefix/--root DIR.")
    var root: String = "/"

    var hostRoot: HostRoot {
        HostRoot(root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root)
    }
}

/// The options a suggested `workstation ...` command needs to act on the same inputs and root as this run.
func commandOptions(_ inputs: InputOptions, _ root: RootOptions) -> String {
    var s = ""
    if let r = inputs.roster { s += " --roster \(r)" }
    if let p = inputs.settings { s += " --settings \(p)" }
    if !root.hostRoot.isSystem { s += " --root \(root.hostRoot.directory)" }
    return s
}

/// An apply-style outcome as JSON: the plan, plus what was applied, failed, skipped and not converged.
func outcomeJSON(_ outcome: ApplyOutcome) -> String {
    PlanRenderer.json(outcome.plan, extra: [
        "applied": outcome.report.applied.map(\.id),
        "failed": outcome.report.failed.map { ["change": $0.change.id, "error": $0.error] },
        "skipped": outcome.report.skipped.map { ["change": $0.change.id, "reason": $0.reason] },
        "not_converged": outcome.verification.actionable.map(\.id),
        "processes_spawned": ProcessRunner.spawnedByThisProcess,
        "cpu_ms": cpuMilliseconds(),
    ])
}

/// CPU time used so far, user plus system, in milliseconds: `workstation` by this process (all its threads),
/// `tools` by the child processes it ran and waited for (useradd, systemctl, git...). From `getrusage(2)`
/// (`RUSAGE_SELF`, `RUSAGE_CHILDREN`).
func cpuMilliseconds() -> [String: Int] {
    func ms(_ who: __rusage_who_t) -> Int {
        var r = rusage()
        guard getrusage(who, &r) == 0 else { return 0 }
        return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1000
    }
    return ["workstation": ms(RUSAGE_SELF.rawValue), "tools": ms(RUSAGE_CHILDREN.rawValue)]
}

/// Ends the process with `code` at once (`exit(3)`: standard output is flushed, nothing is freed), for a command
/// whose last step was to print a result built from a large snapshot. (Inside a command, `exit` names
/// ArgumentParser's `ParsableCommand.exit(withError:)`, which is why this is a function of its own.)
func exitNow(_ code: Int32) -> Never {
    exit(code)
}

/// Prints to standard error.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
}

/// True when stdout is a terminal and NO_COLOR is unset.
var useColor: Bool {
    isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
}

/// Maps the library's errors to the exit-code contract; prints them to stderr.
func reportedExit(_ error: Error) -> ExitCode {
    switch error {
    case let e as ValidationFailure:
        printError(e.description)
        printError("nothing was changed")
        return ExitCode(1)
    case let e as RefusedError:
        printError(e.description)
        return ExitCode(3)
    default:
        printError("error: \(error)")
        return ExitCode(1)
    }
}
