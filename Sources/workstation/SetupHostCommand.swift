import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct SetupHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup-host",
        abstract: "Converge the machine-wide layers: managed Claude Code settings, skel links, profile.d, tool manifest, reconcile timer.",
        discussion: """
            Also checks, for every child in the roster, that the config base is reachable through every directory \
            (offering an additive ACL fix), and tightens secret files in managed homes. Refuses (exit 1) any \
            machine-wide content that carries a secret. Runs additive, derived and tighten changes only.
            """)

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(name: [.customLong("plan"), .customLong("dry-run")], help: "Only show what setup-host would change (reads only).")
    var planOnly = false

    @Flag(help: "Install missing manifest packages with apt-get instead of only reporting them (real root only).")
    var installPackages = false

    @Flag(help: "With --plan: exit 2 when setup-host would change something, 0 when not.")
    var detailedExitcode = false

    @Flag(help: "Print the plan (and outcome) as JSON.")
    var json = false

    func run() throws {
        let root = rootOptions.hostRoot
        let options = SetupHostOptions(installPackages: installPackages)
        if planOnly {
            let plan: Plan
            do {
                let loaded = try Engine.load(inputs.paths, root: root)
                (plan, _) = try SetupHostEngine.plan(loaded, root: root, options: options)
            } catch {
                throw reportedExit(error)
            }
            if json { sayJSON(PlanRenderer.json(plan, extra: ["processes_spawned": 0])) } else { say(PlanRenderer.humanText(plan, color: useColor)) }
            if !plan.refusals.isEmpty { throw ExitCode(3) }
            if detailedExitcode && !plan.isEmpty { throw ExitCode(2) }
            return
        }
        let outcome: ApplyOutcome
        do {
            let loaded = try Engine.load(inputs.paths, root: root)
            outcome = try SetupHostEngine.apply(loaded, root: root, runner: ProcessRunner(), options: options, progress: { printError($0) })
        } catch {
            throw reportedExit(error)
        }
        if json {
            sayJSON(outcomeJSON(outcome))
        } else {
            say(PlanRenderer.humanText(outcome.plan, color: useColor))
            say("Applied \(outcome.report.applied.count) of \(outcome.plan.actionable.count) changes.")
        }
        for n in outcome.report.notes { printError("note: \(n)") }
        for f in outcome.report.failed { printError("error: \(f.error)") }
        for s in outcome.report.skipped { printError("skipped: \(s.change.summary): \(s.reason)") }
        if !outcome.converged { printError("error: \(ApplyError.notConverged(outcome.verification.actionable))") }
        if !outcome.succeeded { throw ExitCode(1) }
    }
}
