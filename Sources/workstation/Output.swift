import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

/// The exit-code contract, the same for every command (docs/json.md, `workstation --help`).
enum ExitStatus {
    /// Done, or nothing to do.
    static let ok: Int32 = 0
    /// An error: invalid input (nothing changed), a failed step, a host that is not healthy.
    static let error: Int32 = 1
    /// `--detailed-exitcode`: apply (or setup-host) would change something.
    static let changesPending: Int32 = 2
    /// Refused by a safety gate (lockout guard, capacity, idle gate): nothing changed.
    static let refused: Int32 = 3
    /// `--pending-exitcode`, added to 2: revoke, destroy or conflicting items wait for an operator.
    static let operatorPending: Int32 = 4
    /// Usage error: an unknown option, a missing or malformed argument (sysexits(3) `EX_USAGE`, as ArgumentParser exits).
    static let usage: Int32 = 64
}

/// How one run reports: its command's name and whether it prints JSON.
///
/// With `--json` every exit path prints exactly one JSON object on standard output (docs/json.md): `format_version`
/// (`JSONContract.formatVersion`), `command`, `exit_code`, then the command's fields; a run that fails or is refused
/// carries `error` (`kind`, `message`, and for invalid input `diagnostics` with file, line and column). Keys are
/// sorted, so the same host and inputs print the same bytes; CPU time appears only with `--timings`. Without
/// `--json`, results go to standard output and every error, refusal and progress line to standard error.
struct Reporter {
    let command: String
    let json: Bool
    var timings = false
    /// This run's `--roster`/`--settings`/`--root` (`commandOptions`), carried by every command a message suggests.
    var options = ""

    /// Prints `line` on standard error, its suggested commands carrying this run's options.
    func say(_ line: String) {
        printError(SuggestedCommand.carrying(options, in: line))
    }

    /// `line` with its suggested commands carrying this run's options (for standard output).
    func text(_ line: String) -> String { SuggestedCommand.carrying(options, in: line) }

    /// Prints one JSON object: the contract's envelope around `fields`.
    func emit(_ fields: [String: Any], exitCode: Int32) {
        sayJSON(JSONContract.object(command: command, exitCode: exitCode, fields))
    }

    /// The fields a run adds when `--timings` is set: `cpu_ms` (`cpuMilliseconds()`).
    var timingFields: [String: Any] { timings ? ["cpu_ms": cpuMilliseconds()] : [:] }

    /// Maps a library error to the exit-code contract and reports it once: as the JSON object with `error`, or as
    /// text on standard error. Returns the exit code to throw.
    func failure(_ error: Error) -> ExitCode {
        let (code, fields, text) = Self.describe(error)
        if json {
            emit(fields, exitCode: code)
        } else {
            say(text)
        }
        return ExitCode(code)
    }

    /// Prints each refusal on standard error (text mode; JSON carries them in `refusals`).
    func refusals(_ plan: Plan) {
        guard !json else { return }
        for r in plan.refusals { say("refused by \(r.gate): \(r.message)") }
    }

    /// Exit code, JSON fields and text for `error`.
    static func describe(_ error: Error) -> (Int32, [String: Any], String) {
        switch error {
        case let e as ValidationFailure:
            let diagnostics: [[String: Any]] = e.diagnostics.map {
                [
                    "file": $0.location.file, "line": $0.location.line, "column": $0.location.column,
                    "message": $0.message,
                ]
            }
            let closing = e.revoked.isEmpty ? "nothing was changed" : "nothing else was changed"
            return (
                ExitStatus.error,
                [
                    "error": [
                        "kind": "invalid_input", "message": "the input is invalid; \(closing)",
                        "diagnostics": diagnostics,
                    ],
                    "changed": !e.revoked.isEmpty, "revoked": e.revoked,
                ],
                ([e.description] + e.revoked + [closing]).joined(separator: "\n")
            )
        case let e as RefusedError:
            return (
                ExitStatus.refused,
                [
                    "error": [
                        "kind": "refused",
                        "message": "refused by a safety gate; "
                            + (e.revoked.isEmpty ? "nothing was changed" : "nothing else was changed"),
                    ],
                    "refusals": e.plan.refusals.map { ["gate": $0.gate.rawValue, "message": $0.message] },
                    "changed": !e.revoked.isEmpty, "revoked": e.revoked,
                ],
                e.description
            )
        default:
            return (ExitStatus.error, ["error": ["kind": "failed", "message": "\(error)"]], "error: \(error)")
        }
    }
}

/// The JSON output contract's envelope (docs/json.md).
enum JSONContract {
    /// Raised when a field is removed or changes meaning; new fields do not raise it.
    static let formatVersion = 1

    /// `fields` with `format_version`, `command` and `exit_code` added, as sorted, pretty-printed JSON.
    static func object(command: String, exitCode: Int32, _ fields: [String: Any]) -> String {
        var obj = fields
        obj["format_version"] = formatVersion
        obj["command"] = command
        obj["exit_code"] = Int(exitCode)
        return jsonText(obj)
    }
}

/// The `--json` and `--timings` flags of a command that prints a result.
struct JSONOptions: ParsableArguments {
    @Flag(help: "Print one JSON object (docs/json.md), on every exit path.")
    var json = false

    @Flag(help: "With --json: add cpu_ms, this run's CPU time (not deterministic, hence opt-in).")
    var timings = false

    /// - Parameter options: `commandOptions(inputs, rootOptions)` of the run.
    func reporter(_ command: String, options: String = "") -> Reporter {
        Reporter(command: command, json: json, timings: timings, options: options)
    }
}

/// Maps the library's errors to the exit-code contract; prints them to stderr (text mode).
func reportedExit(_ error: Error) -> ExitCode {
    Reporter(command: "", json: false).failure(error)
}
