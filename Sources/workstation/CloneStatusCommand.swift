import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct CloneStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone-status",
        abstract:
            "One line per person: the infra clone at ~/code present (locked state verified), kept, missing or off. Reads files only."
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @OptionGroup var output: JSONOptions

    func run() throws {
        let reporter = output.reporter("clone-status", options: commandOptions(inputs, rootOptions))
        let states: [CloneStatus]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            states = try CloneInspector(root: rootOptions.hostRoot, settings: loaded.settings).states(
                roster: loaded.roster
            )
        } catch {
            throw reporter.failure(error)
        }
        if reporter.json {
            let enc = JSONEncoder()
            enc.keyEncodingStrategy = .convertToSnakeCase
            let clones = try JSONSerialization.jsonObject(with: try enc.encode(states))
            reporter.emit(["clones": clones], exitCode: ExitStatus.ok)
        } else {
            for s in states { say(s.line) }
        }
    }
}
