import Metrics

/// The ring runtime's swift-metrics instruments (no backend bootstrapped: near-free).
///
/// - `confab_hints_stored_total`, `confab_hints_replayed_total`, `confab_hints_replay_failures_total`,
///   `confab_hints_dropped_total` (target down longer than the hint window), `confab_hints_pending`.
/// - `confab_read_repairs_total`: repair mutations sent by blocking read repair.
/// - `confab_coordinator_failures_total{code}`: requests answered with unavailable/timeout/failure.
/// - `confab_ring_live_nodes`: members this node believes up, itself included.
struct RingMetrics: Sendable {
    let hintsStored = Counter(label: "confab_hints_stored_total")
    let hintsReplayed = Counter(label: "confab_hints_replayed_total")
    let hintReplayFailures = Counter(label: "confab_hints_replay_failures_total")
    let hintsDropped = Counter(label: "confab_hints_dropped_total")
    let hintsPending = Gauge(label: "confab_hints_pending")
    let readRepairs = Counter(label: "confab_read_repairs_total")
    let liveNodes = Gauge(label: "confab_ring_live_nodes")

    func coordinatorFailure(_ code: String) {
        Counter(label: "confab_coordinator_failures_total", dimensions: [("code", code)]).increment()
    }
}
