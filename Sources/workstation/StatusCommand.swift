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

    @OptionGroup var output: JSONOptions

    func run() throws {
        let reporter = output.reporter("status", options: commandOptions(inputs, rootOptions))
        let rows: [StatusRow]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            rows = try StatusReader(root: rootOptions.hostRoot, inputs: loaded).rows()
        } catch {
            throw reporter.failure(error)
        }
        if reporter.json {
            reporter.emit(StatusReader.jsonObject(rows), exitCode: ExitStatus.ok)
        } else {
            say(StatusReader.table(rows), terminator: "")
        }
    }
}
