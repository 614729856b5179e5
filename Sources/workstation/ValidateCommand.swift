import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationDispatch
import WorkstationHost

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the roster and settings; print every problem as FILE:LINE:COL: error: ..."
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions
    @OptionGroup var output: JSONOptions

    func run() throws {
        let reporter = output.reporter("validate", options: commandOptions(inputs, rootOptions))
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            if let settingsPath = loaded.settingsPath {
                let dispatch = try DispatchConfig.load(path: settingsPath)
                // The host's dispatcher reads this file: mutual TLS to the workspaces needs its client side here.
                if let w = loaded.settings.workspaces, w.tls.mode == .mutual, !w.dispatcher.inCluster,
                    dispatch.workspaceTLS == nil, !loaded.roster.kubernetesPlaced(loaded.settings).isEmpty
                {
                    throw ValidationFailure([
                        Diagnostic(
                            loaded.settings.location(of: "workspaces.tls"),
                            "workspaces.tls.mode is mutual, but dispatch.workspace_tls is not set, so the dispatcher would answer 502 for every kubernetes-placed person; set dispatch.workspace_tls {ca_file, cert_file, key_file} (docs/scale-out.md)"
                        )
                    ])
                }
            }
            // Host-aware checks (a pinned uid another account holds) when the root has account databases.
            if FileManager.default.fileExists(atPath: rootOptions.hostRoot.path("/etc/passwd")) {
                _ = try Engine.plan(loaded, root: rootOptions.hostRoot)
            }
            let people = loaded.roster.entries.count
            if reporter.json {
                reporter.emit(
                    [
                        "roster": loaded.rosterPath, "settings": loaded.settingsPath ?? NSNull(), "people": people,
                        "diagnostics": [Any](),
                    ],
                    exitCode: ExitStatus.ok
                )
            } else {
                say("\(loaded.rosterPath): ok (\(people) \(people == 1 ? "person" : "people"))")
            }
        } catch {
            throw reporter.failure(error)
        }
    }
}
