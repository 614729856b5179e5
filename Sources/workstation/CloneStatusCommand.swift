import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct CloneStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone-status",
        abstract: "One line per person: the infra clone at ~/code present (locked state verified), kept, missing or off. Reads files only.")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Flag(help: "Print the states as JSON.")
    var json = false

    func run() throws {
        let states: [CloneStatus]
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            states = try CloneInspector(root: rootOptions.hostRoot, settings: loaded.settings).states(roster: loaded.roster)
        } catch {
            throw reportedExit(error)
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            enc.keyEncodingStrategy = .convertToSnakeCase
            sayJSON(String(decoding: try enc.encode(states), as: UTF8.self))
        } else {
            for s in states { say(s.line) }
        }
    }
}
