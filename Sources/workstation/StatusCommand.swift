import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One row per roster person: tier, account, unit, port, sessions, resident memory against budget, clone. Reads only.",
        discussion: """
            Then, when anyone left the roster and is not archived yet, one row per person mid-offboarding: the stage \
            recorded last and when, processes still running as them, and the command of the next stage.
            """)

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "Print the rows as JSON.")
    var json = false

    func run() throws {
        let rows: [StatusRow]
        let offboarding: [OffboardingRow]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            let reader = StatusReader(root: rootOptions.hostRoot, inputs: loaded)
            rows = try reader.rows()
            offboarding = try reader.offboarding()
        } catch {
            throw reportedExit(error)
        }
        let options = commandOptions(inputs, rootOptions)
        if json {
            print(StatusReader.json(rows, offboarding: offboarding, options: options))
        } else {
            print(StatusReader.table(rows) + OffboardingRow.table(offboarding, options: options), terminator: "")
        }
    }
}
