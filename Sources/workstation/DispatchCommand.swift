import ArgumentParser
import Foundation
import Logging
import NIOCore
import WorkstationCore
import WorkstationDispatch

/// `workstation dispatch`: the per-user reverse proxy (docs/dispatch.md).
struct DispatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch",
        abstract: "Route each person's browser traffic to their own instance, by a proven identity.",
        discussion: """
            Reads the dispatch: section of the settings file; options override it. With identity: peer it serves \
            a unix socket and believes only front_proxy_users (SO_PEERCRED); with identity: jwt every request \
            carries a signed X-authentik-jwt. Refuses to start in a configuration where a local account could act \
            as another person. Under systemd it takes the socket from workstation-dispatch.socket, reports \
            readiness and pings the watchdog (Type=notify). Answers 403 to anyone not routed by dispatch.json, \
            429 to a new person when max_active_users people are active, and 502 when the listener on a person's \
            port does not belong to their account. Serves /healthz and /metrics on --metrics-listen. See \
            docs/dispatch.md.
            """
    )

    @Option(
        name: .long,
        help:
            "Settings file (its dispatch: section is read; default /etc/workstation/workstation.yaml, which may be absent)."
    )
    var settings: String?

    @Option(name: .long, help: "Proxy listen address: HOST:PORT or unix:/PATH.")
    var listen: String?

    @Option(name: .customLong("metrics-listen"), help: "Listen address for /healthz and /metrics.")
    var metricsListen: String?

    @Option(name: .customLong("dispatch-file"), help: "Routing map (dispatch.json).")
    var dispatchFile: String?

    @Option(
        name: .customLong("trusted-proxy"),
        help: "identity jwt: a remote edge address allowed to connect (repeatable)."
    )
    var trustedProxies: [String] = []

    @Option(
        name: .customLong("front-proxy-user"),
        help: "identity peer: an account whose connections are believed (repeatable)."
    )
    var frontProxyUsers: [String] = []

    @Option(name: .customLong("gate-group"), help: "Group required in X-authentik-groups.")
    var gateGroup: String?

    @Option(name: .customLong("max-active-users"), help: "Distinct active users before new users get 429.")
    var maxActiveUsers: Int?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        var config: DispatchConfig
        // Only the default path may be absent (every key has a default): a named file that is not there is a typo,
        // and starting with defaults would change the deployment silently.
        if let settings, !FileManager.default.fileExists(atPath: settings) {
            printError("error: the settings file \(settings) does not exist; check --settings")
            throw ExitCode(1)
        }
        let settings = self.settings ?? "/etc/workstation/workstation.yaml"
        do {
            config = try DispatchConfig.load(path: settings)
        } catch let failure as ValidationFailure {
            printError(failure.description)
            throw ExitCode(1)
        } catch {
            printError("error: cannot read \(settings): \(error)")
            throw ExitCode(1)
        }
        func address(_ text: String, _ flag: String) throws -> ListenAddress {
            switch ListenAddress.parse(text) {
            case .success(let a): return a
            case .failure(let e): throw ValidationError("\(flag): \(e.description)")
            }
        }
        if let listen { config.listen = try address(listen, "--listen") }
        if let metricsListen { config.metricsListen = try address(metricsListen, "--metrics-listen") }
        if let dispatchFile { config.dispatchFile = dispatchFile }
        if !trustedProxies.isEmpty { config.trustedProxies = trustedProxies }
        if !frontProxyUsers.isEmpty { config.frontProxyUsers = frontProxyUsers }
        if let gateGroup { config.gateGroup = gateGroup }
        if let maxActiveUsers {
            guard maxActiveUsers >= 1 else { throw ValidationError("--max-active-users must be at least 1") }
            config.maxActiveUsers = maxActiveUsers
        }
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        // One line per message on standard error, with the syslog priority prefix the journal reads.
        var logger = Logger(label: "workstation.dispatch") { JournalLogHandler(label: $0) }
        logger.logLevel = level

        let server: DispatchServer
        do {
            server = try await DispatchServer.start(config: config, logger: logger, inherited: Systemd.listenFDs())
        } catch {
            logger.critical("cannot start", metadata: ["error": .string("\(error)")])
            throw ExitCode(1)
        }
        Systemd.notify("READY=1")
        // The start-up's pages go back; those the proxy uses come back on first use.
        ProcessMemory.releaseStartupPages()
        // SIGTERM (systemd stop) and SIGINT end the process after closing the listeners.
        let stop = SignalStop()
        stop.onSignal {
            Systemd.notify("STOPPING=1")
            Task { await server.shutdown() }
        }
        try await server.closeFuture.get()
        logger.info("dispatch stopped")
    }
}

/// Runs a handler on SIGTERM or SIGINT (once).
final class SignalStop: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    func onSignal(_ handler: @escaping @Sendable () -> Void) {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            sources.append(source)
        }
    }
}
