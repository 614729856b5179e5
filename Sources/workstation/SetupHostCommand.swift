import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct SetupHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup-host",
        abstract:
            "Converge the machine-wide layers: managed Claude Code settings, skel links, profile.d, tool manifest, reconcile timer.",
        discussion: """
            Also checks, for every child in the roster, that the config base is reachable through every directory \
            (offering an additive ACL fix), and tightens secret files in managed homes. Stops at any \
            machine-wide content that carries a secret (located errors, exit 1, nothing changed). Runs additive, derived and tighten changes only.
            """
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(
        name: [.customLong("plan"), .customLong("dry-run")],
        help: "Only show what setup-host would change (reads only)."
    )
    var planOnly = false

    @Flag(help: "Install missing manifest packages with apt-get instead of only reporting them (real root only).")
    var installPackages = false

    @Flag(help: "With --plan: exit 2 when setup-host would change something, 0 when not.")
    var detailedExitcode = false

    @OptionGroup var output: JSONOptions

    func run() throws {
        let root = rootOptions.hostRoot
        let reporter = output.reporter("setup-host", options: commandOptions(inputs, rootOptions))
        let options = SetupHostOptions(installPackages: installPackages)
        if planOnly {
            let plan: Plan
            do {
                let loaded = try Engine.load(inputs.paths, root: root)
                (plan, _) = try SetupHostEngine.plan(loaded, root: root, options: options)
            } catch {
                throw reporter.failure(error)
            }
            let code = PlanCommand.exitCode(plan, detailed: detailedExitcode, pending: false)
            if reporter.json {
                var fields = PlanRenderer.jsonObject(plan)
                fields["processes_spawned"] = 0
                fields["plan_only"] = true
                reporter.emit(fields, exitCode: code)
            } else {
                say(PlanRenderer.humanText(plan, color: useColor, commandOptions: commandOptions(inputs, rootOptions)))
                reporter.refusals(plan)
            }
            if code != ExitStatus.ok { throw ExitCode(code) }
            return
        }
        let outcome: ApplyOutcome
        do {
            let loaded = try Engine.load(inputs.paths, root: root)
            outcome = try SetupHostEngine.apply(
                loaded,
                root: root,
                runner: ProcessRunner(),
                options: options,
                progress: { printError($0) }
            )
        } catch {
            throw reporter.failure(error)
        }
        if reporter.json {
            var fields = outcomeFields(outcome).merging(reporter.timingFields) { $1 }
            fields["plan_only"] = false
            reporter.emit(fields, exitCode: outcome.succeeded ? ExitStatus.ok : ExitStatus.error)
        } else {
            say(
                PlanRenderer.humanText(
                    outcome.plan,
                    color: useColor,
                    commandOptions: commandOptions(inputs, rootOptions)
                )
            )
            say("Applied \(outcome.report.applied.count) of \(outcome.plan.actionable.count) changes.")
        }
        for n in outcome.report.notes { reporter.say("note: \(n)") }
        for f in outcome.report.failed { reporter.say("error: \(f.error)") }
        for s in outcome.report.skipped { reporter.say("skipped: \(s.change.summary): \(s.reason)") }
        if !outcome.converged { reporter.say("error: \(ApplyError.notConverged(outcome.verification.actionable))") }
        if !outcome.succeeded { throw ExitCode(1) }
    }
}
