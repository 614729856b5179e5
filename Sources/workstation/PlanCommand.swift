import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what apply would change, per user, with safety classes. Reads only.")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "Print the plan as JSON.")
    var json = false

    @Flag(help: "Exit 2 when apply would change something, 0 when not.")
    var detailedExitcode = false

    func run() throws {
        let plan: Plan
        let observed: (DesiredState, HostSnapshot)
        do {
            let (loaded, base) = try Engine.loadObserving(inputs.paths, root: rootOptions.hostRoot)
            let desired: DesiredState, snapshot: HostSnapshot
            (plan, desired, snapshot) = try Engine.plan(loaded, root: rootOptions.hostRoot, base: base)
            observed = (desired, snapshot)
        } catch {
            throw reportedExit(error)
        }
        if json {
            sayJSON(PlanRenderer.json(plan, extra: ["processes_spawned": ProcessRunner.spawnedByThisProcess, "cpu_ms": cpuMilliseconds()]))
        } else {
            say(PlanRenderer.humanText(plan, color: useColor, commandOptions: commandOptions(inputs, rootOptions)))
        }
        let code: Int32 = !plan.refusals.isEmpty ? 3 : !plan.errors.isEmpty ? 1 : detailedExitcode && !plan.isEmpty ? 2 : 0
        // The snapshot of a large host is tens of thousands of values: the process ends without freeing them.
        withExtendedLifetime(observed) { exitNow(code) }
    }
}
