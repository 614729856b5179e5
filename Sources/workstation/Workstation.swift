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
            Exit codes: 0 ok or nothing to do; 1 error (invalid input changes nothing); 2 apply would change \
            something (plan --detailed-exitcode); 4, added to 2, revoke/destroy or conflicts wait for an operator \
            (plan --pending-exitcode); 3 refused by a safety gate (lockout guard, capacity, idle gate), nothing \
            changed; 64 usage error. With --json every exit path prints one JSON object (docs/json.md). \
            Results go to standard output; errors, refusals and progress to standard error.
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
        ]
    )

    /// Parses, then runs; with `--json` a usage error is reported as one JSON object too (exit 64).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        var command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if arguments.contains("--json"), code != .success {
                let name = arguments.first { !$0.hasPrefix("-") } ?? "workstation"
                sayJSON(
                    JSONContract.object(
                        command: name,
                        exitCode: code.rawValue,
                        [
                            "error": ["kind": "usage", "message": fullMessage(for: error)]
                        ]
                    )
                )
                Foundation.exit(code.rawValue)
            }
            exit(withError: error)
        }
        do {
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if arguments.contains("--json") {
                let name = type(of: command).configuration.commandName ?? "workstation"
                sayJSON(
                    JSONContract.object(
                        command: name,
                        exitCode: code.rawValue,
                        [
                            "error": [
                                "kind": code.rawValue == ExitStatus.usage ? "usage" : "failed",
                                "message": fullMessage(for: error),
                            ]
                        ]
                    )
                )
                Foundation.exit(code.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// The release version: `Sources/workstation/VERSION` (one line, e.g. `0.1.0`), compiled into the binary by SwiftPM
/// (`resources: [.embedInCode("VERSION")]` in Package.swift), so `workstation --version`, the `workstation_build_info`
/// metric and the Debian package (scripts/package) always agree.
let workstationVersion = String(decoding: PackageResources.VERSION, as: UTF8.self).trimmingCharacters(
    in: .whitespacesAndNewlines
)

/// --roster and --settings, shared by every command that reads the inputs.
struct InputOptions: ParsableArguments {
    @Option(help: "Roster file (default: <root>/etc/workstation/roster.yaml).")
    var roster: String?

    @Option(
        help: "Settings file (default: <root>/etc/workstation/workstation.yaml; optional, every key has a default)."
    )
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
/// Paths are absolute and normalised (`./`, `..` resolved lexically), so the command works pasted in any directory,
/// and quoted for a POSIX shell when they hold anything but plain path characters.
func commandOptions(_ inputs: InputOptions, _ root: RootOptions) -> String {
    func path(_ p: String) -> String {
        let url = URL(fileURLWithPath: p, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        return shellWord(url.standardizedFileURL.path)
    }
    var s = ""
    if let r = inputs.roster { s += " --roster \(path(r))" }
    if let p = inputs.settings { s += " --settings \(path(p))" }
    if !root.hostRoot.isSystem { s += " --root \(path(root.hostRoot.directory))" }
    return s
}

/// An apply-style outcome's JSON fields: the plan's (`PlanRenderer.jsonObject`), plus `applied`, `failed`
/// [{`change`, `error`}], `skipped` [{`change`, `reason`}], `not_converged` and `processes_spawned`.
func outcomeFields(_ outcome: ApplyOutcome) -> [String: Any] {
    var obj = PlanRenderer.jsonObject(outcome.plan)
    obj["applied"] = outcome.report.applied.map(\.id.description)
    obj["failed"] = outcome.report.failed.map { ["change": $0.change.id.description, "error": $0.error] }
    obj["skipped"] = outcome.report.skipped.map { ["change": $0.change.id.description, "reason": $0.reason] }
    obj["not_converged"] = outcome.verification.actionable.map(\.id.description)
    obj["processes_spawned"] = ProcessRunner.spawnedByThisProcess
    return obj
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

// Every human output goes through `say` or `printError`, which escape what a terminal would act on
// (`terminalSafe`: control characters, bidi overrides...), so no file, link, process or IdP name reaches root's
// terminal raw. JSON goes through `sayJSON` (`jsonText` escapes the same characters as `\uXXXX`).

/// Writes human text to standard output, escaped (newlines kept).
func say(_ s: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((terminalSafe(s) + terminator).utf8))
}

/// Writes rendered text (already escaped, with its own colours) to standard output.
func say(_ t: TerminalText) {
    FileHandle.standardOutput.write(Data(t.rendered.utf8))
}

/// Writes a JSON document (from `jsonText` or an encoder) and a newline to standard output.
func sayJSON(_ json: String) {
    FileHandle.standardOutput.write(Data((json + "\n").utf8))
}

/// Writes human text to standard error, escaped (newlines kept), ending in a newline.
func printError(_ s: String) {
    let safe = terminalSafe(s)
    FileHandle.standardError.write(Data((safe.hasSuffix("\n") ? safe : safe + "\n").utf8))
}

/// True when stdout is a terminal and NO_COLOR is unset.
var useColor: Bool {
    isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
}
