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
        do {
            let (loaded, base) = try Engine.loadObserving(inputs.paths, root: rootOptions.hostRoot)
            (plan, _, _) = try Engine.plan(loaded, root: rootOptions.hostRoot, base: base)
        } catch {
            throw reportedExit(error)
        }
        if json {
            print(PlanRenderer.json(plan, extra: ["processes_spawned": ProcessRunner.spawnedByThisProcess, "cpu_ms": cpuMilliseconds()]))
        } else {
            print(PlanRenderer.human(plan, color: useColor, commandOptions: commandOptions(inputs, rootOptions)), terminator: "")
        }
        if !plan.refusals.isEmpty { throw ExitCode(3) }
        if !plan.errors.isEmpty { throw ExitCode(1) }
        if detailedExitcode && !plan.isEmpty { throw ExitCode(2) }
    }
}
