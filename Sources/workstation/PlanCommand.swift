import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what apply would change, per user, with safety classes. Reads only."
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @OptionGroup var output: JSONOptions

    @Flag(help: "Exit 2 when apply would change something, 0 when not.")
    var detailedExitcode = false

    @Flag(
        help:
            "Add 4 to the exit code when revoke/destroy or conflicting items wait for an operator (offboard, cutover), e.g. for CI."
    )
    var pendingExitcode = false

    func run() throws {
        let reporter = output.reporter("plan", options: commandOptions(inputs, rootOptions))
        let plan: Plan
        let observed: (DesiredState, HostSnapshot)
        do {
            let (loaded, base) = try Engine.loadObserving(inputs.paths, root: rootOptions.hostRoot)
            let desired: DesiredState
            let snapshot: HostSnapshot
            (plan, desired, snapshot) = try Engine.plan(loaded, root: rootOptions.hostRoot, base: base)
            observed = (desired, snapshot)
        } catch {
            throw reporter.failure(error)
        }
        let code = Self.exitCode(plan, detailed: detailedExitcode, pending: pendingExitcode)
        if reporter.json {
            var fields = PlanRenderer.jsonObject(plan)
            fields["processes_spawned"] = ProcessRunner.spawnedByThisProcess
            fields.merge(reporter.timingFields) { $1 }
            reporter.emit(fields, exitCode: code)
        } else {
            say(PlanRenderer.humanText(plan, color: useColor, commandOptions: commandOptions(inputs, rootOptions)))
            reporter.refusals(plan)
        }
        // The snapshot of a large host is tens of thousands of values: the process ends without freeing them.
        withExtendedLifetime(observed) { exitNow(code) }
    }

    /// 3 when a gate refuses, 1 on errors; else 0, plus 2 (`detailed`) when apply would change something and 4
    /// (`pending`) when revoke/destroy or conflicting items wait for an operator.
    static func exitCode(_ plan: Plan, detailed: Bool, pending: Bool) -> Int32 {
        if !plan.refusals.isEmpty { return ExitStatus.refused }
        if !plan.errors.isEmpty { return ExitStatus.error }
        var code = ExitStatus.ok
        if detailed && !plan.isEmpty { code += ExitStatus.changesPending }
        if pending && plan.summary.pending + plan.summary.conflict > 0 { code += ExitStatus.operatorPending }
        return code
    }
}
