import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print Prometheus metrics (text format) for node_exporter's textfile collector. Reads only.")

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Option(help: "Write to FILE atomically (e.g. /var/lib/prometheus/node-exporter/workstation.prom) instead of stdout.")
    var output: String?

    func run() throws {
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            let text = try MetricsCollector(root: rootOptions.hostRoot, inputs: loaded).render()
            if let output {
                let path = output.hasPrefix("/") ? output : FileManager.default.currentDirectoryPath + "/" + output
                try writeFileAtomically(Data(text.utf8), to: path, mode: 0o644)
            } else {
                say(text, terminator: "")
            }
        } catch {
            throw reportedExit(error)
        }
    }
}
