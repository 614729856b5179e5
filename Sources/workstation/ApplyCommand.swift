import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Converge the host to the roster: additive, derived and tighten changes only; then verify."
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "If the root has no etc/passwd, seed it like a fresh Debian host first (for a sandbox root).")
    var initRoot = false

    @Flag(
        help: "Onboard new people even when the capacity gate refuses (budgets or headcount over the limit); journaled."
    )
    var allowOvercommit = false

    @OptionGroup var output: JSONOptions

    func run() throws {
        let root = rootOptions.hostRoot
        let reporter = output.reporter("apply", options: commandOptions(inputs, rootOptions))
        let outcome: ApplyOutcome
        do {
            if initRoot {
                guard !root.isSystem else {
                    throw ValidationError("--init-root seeds a sandbox root and refuses /; pass --root DIR")
                }
                let settings = try Engine.loadSettings(inputs.paths, root: root).settings
                if try SandboxRoot.seed(root, settings: settings) {
                    printError("seeded \(root.directory) as a fresh Debian host")
                }
            }
            outcome = try Engine.apply(
                inputs.paths,
                root: root,
                runner: ProcessRunner(),
                allowOvercommit: allowOvercommit,
                progress: { printError($0) }
            )
        } catch let e as ValidationError {
            throw e
        } catch {
            throw reporter.failure(error)
        }
        let code = outcome.succeeded ? ExitStatus.ok : ExitStatus.error
        if reporter.json {
            reporter.emit(outcomeFields(outcome).merging(reporter.timingFields) { $1 }, exitCode: code)
        } else {
            say(
                PlanRenderer.humanText(
                    outcome.plan,
                    color: useColor,
                    commandOptions: commandOptions(inputs, rootOptions)
                )
            )
            if !root.isSystem
                && outcome.plan.actionable.contains(where: { if case .enableUnit = $0.action { true } else { false } })
            {
                say("units were enabled only: under --root no systemd runs, so nothing was started")
            }
            say("Applied \(outcome.report.applied.count) of \(outcome.plan.actionable.count) changes.")
        }
        for n in outcome.report.notes { reporter.say("note: \(n)") }
        for f in outcome.report.failed { reporter.say("error: \(f.error)") }
        for s in outcome.report.skipped { reporter.say("skipped: \(s.change.summary): \(s.reason)") }
        if !outcome.converged {
            reporter.say("error: \(ApplyError.notConverged(outcome.verification.actionable))")
        }
        // The snapshot of a large host is tens of thousands of values: the process ends without freeing them.
        withExtendedLifetime(outcome) { exitNow(code) }
    }
}
