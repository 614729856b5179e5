import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "One row per roster person: tier, account, unit, port, sessions, resident memory against budget, clone. Reads only.",
        discussion: """
            Then, when anyone left the roster and is not archived yet, one row per person mid-offboarding: the stage \
            recorded last and when, processes still running as them, and the command of the next stage.
            """
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @OptionGroup var output: JSONOptions

    func run() throws {
        let reporter = output.reporter("status", options: commandOptions(inputs, rootOptions))
        let rows: [StatusRow]
        let offboarding: [OffboardingRow]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            let reader = StatusReader(root: rootOptions.hostRoot, inputs: loaded)
            rows = try reader.rows()
            offboarding = try reader.offboarding()
        } catch {
            throw reporter.failure(error)
        }
        let options = commandOptions(inputs, rootOptions)
        if reporter.json {
            reporter.emit(
                StatusReader.jsonObject(rows, offboarding: offboarding, options: options),
                exitCode: ExitStatus.ok
            )
        } else {
            say(StatusReader.table(rows) + OffboardingRow.table(offboarding, options: options), terminator: "")
        }
    }
}
