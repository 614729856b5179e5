import NIOConcurrencyHelpers
import Prometheus

/// The dispatcher's Prometheus metrics (text exposition format 0.0.4, served at `/metrics`).
///
/// - `workstation_dispatch_requests_total{status}`: responses sent, by HTTP status (403 and 429 included).
/// - `workstation_dispatch_upstream_latency_seconds`: histogram of the time from forwarding a request head to
///   receiving the upstream's response head, in seconds.
/// - `workstation_dispatch_open_websockets`: WebSocket tunnels open now.
/// - `workstation_dispatch_active_users`: distinct users with a live connection now.
/// - `workstation_dispatch_reloads_total{result}`: dispatch.json reloads, `result` = `ok` or `error`.
/// - `workstation_dispatch_handoffs_total{reason}`: connections the fast path handed to the full HTTP path, by
///   reason (`FastClient`: a request outside the fast path's subset, a refusal, a token not yet verified, ...).
public final class DispatchMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let statusCounters = NIOLockedValueBox([Int: Counter]())
    private let handoffCounters = NIOLockedValueBox([String: Counter]())
    let upstreamLatency: DurationHistogram
    let openWebSockets: Gauge
    let activeUsers: Gauge
    let reloadsOK: Counter
    let reloadsError: Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        upstreamLatency = registry.makeDurationHistogram(
            name: "workstation_dispatch_upstream_latency_seconds",
            buckets: [
                .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            ],
            help: "Time from forwarding a request head to the upstream's response head."
        )
        openWebSockets = registry.makeGauge(
            name: "workstation_dispatch_open_websockets",
            help: "WebSocket tunnels open now."
        )
        activeUsers = registry.makeGauge(
            name: "workstation_dispatch_active_users",
            help: "Distinct users with a live connection now."
        )
        reloadsOK = registry.makeCounter(
            name: "workstation_dispatch_reloads_total",
            labels: [("result", "ok")],
            help: "dispatch.json reloads."
        )
        reloadsError = registry.makeCounter(
            name: "workstation_dispatch_reloads_total",
            labels: [("result", "error")],
            help: "dispatch.json reloads."
        )
    }

    /// Counts one response with `status`.
    public func countResponse(_ status: Int) {
        let counter = statusCounters.withLockedValue { c in
            if let existing = c[status] { return existing }
            let made = registry.makeCounter(
                name: "workstation_dispatch_requests_total",
                labels: [("status", String(status))],
                help: "Responses sent, by status."
            )
            c[status] = made
            return made
        }
        counter.increment()
    }

    /// Counts one connection handed from the fast path to the full path, for `reason` (one of a few fixed texts).
    func countHandoff(_ reason: String) {
        let counter = handoffCounters.withLockedValue { c in
            if let existing = c[reason] { return existing }
            let made = registry.makeCounter(
                name: "workstation_dispatch_handoffs_total",
                labels: [("reason", reason)],
                help: "Connections handed from the fast path to the full HTTP path, by reason."
            )
            c[reason] = made
            return made
        }
        counter.increment()
    }

    func reloaded(_ outcome: ReloadOutcome) {
        switch outcome {
        case .unchanged: break
        case .loaded: reloadsOK.increment()
        case .kept: reloadsError.increment()
        }
    }

    /// The exposition text.
    public func render() -> String { registry.emitToString() }
}
