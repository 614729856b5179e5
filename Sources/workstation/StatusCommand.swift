import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One row per roster person: tier, account, unit, port, sessions, resident memory against budget, clone. Reads only.")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "Print the rows as JSON.")
    var json = false

    func run() throws {
        let rows: [StatusRow]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            rows = try StatusReader(root: rootOptions.hostRoot, inputs: loaded).rows()
        } catch {
            throw reportedExit(error)
        }
        if json { sayJSON(StatusReader.json(rows)) } else { say(StatusReader.table(rows), terminator: "") }
    }
}
