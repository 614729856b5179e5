import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationDispatch
import WorkstationHost

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the roster and settings; print every problem as FILE:LINE:COL: error: ...")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    func run() throws {
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            if let settingsPath = loaded.settingsPath { _ = try DispatchConfig.load(path: settingsPath) }
            // Host-aware checks (a pinned uid another account holds) when the root has account databases.
            if FileManager.default.fileExists(atPath: rootOptions.hostRoot.path("/etc/passwd")) {
                _ = try Engine.plan(loaded, root: rootOptions.hostRoot)
            }
            let people = loaded.roster.entries.count
            say("\(loaded.rosterPath): ok (\(people) \(people == 1 ? "person" : "people"))")
        } catch {
            throw reportedExit(error)
        }
    }
}
