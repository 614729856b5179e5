import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print Prometheus metrics (text format) for node_exporter's textfile collector. Reads only.",
        discussion: """
            Host memory, swap and pressure stall figures are left to node_exporter's meminfo and pressure collectors; \
            --host-metrics adds them as workstation_* families for hosts without those. The packaged \
            workstation-metrics.timer writes /var/lib/prometheus/node-exporter/workstation.prom every minute.
            """
    )

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    @Option(
        help: "Write to FILE atomically (e.g. /var/lib/prometheus/node-exporter/workstation.prom) instead of stdout."
    )
    var output: String?

    @Flag(
        help:
            "Also write host memory, swap and pressure (PSI) figures, which node_exporter's meminfo and pressure collectors export already."
    )
    var hostMetrics = false

    func run() throws {
        do {
            let loaded = try Engine.load(inputs.paths, root: rootOptions.hostRoot)
            let text = try MetricsCollector(
                root: rootOptions.hostRoot,
                inputs: loaded,
                version: workstationVersion,
                hostMetrics: hostMetrics
            ).render()
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
