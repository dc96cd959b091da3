import Metrics

/// The ring runtime's swift-metrics instruments (no backend bootstrapped: near-free).
///
/// - `confab_hints_stored_total`, `confab_hints_replayed_total`, `confab_hints_replay_failures_total`,
///   `confab_hints_dropped_total` (target down longer than the hint window), `confab_hints_pending`.
/// - `confab_read_repairs_total`: repair mutations sent by blocking read repair.
/// - `confab_coordinator_failures_total{code}`: requests answered with unavailable/timeout/failure.
/// - `confab_ring_live_nodes`: members this node believes up, itself included;
///   `confab_ring_down_nodes`: members it knows but believes down.
/// - `confab_coordinator_requests_total{op,consistency}` and
///   `confab_coordinator_request_duration_seconds{op,consistency}`: reads and writes this node
///   coordinated, by level (failures included); `confab_coordinator_unavailable_total{op,consistency}`
///   and `confab_coordinator_timeouts_total{op,consistency}`: the two failures a client can act on.
struct ClusterMetrics: Sendable {
    let hintsStored = Counter(label: "confab_hints_stored_total")
    let hintsReplayed = Counter(label: "confab_hints_replayed_total")
    let hintReplayFailures = Counter(label: "confab_hints_replay_failures_total")
    let hintsDropped = Counter(label: "confab_hints_dropped_total")
    let hintsPending = Gauge(label: "confab_hints_pending")
    let readRepairs = Counter(label: "confab_read_repairs_total")
    let liveNodes = Gauge(label: "confab_ring_live_nodes")
    let downNodes = Gauge(label: "confab_ring_down_nodes")

    func coordinatorFailure(_ code: String) {
        Counter(label: "confab_coordinator_failures_total", dimensions: [("code", code)]).increment()
    }

    /// One coordinated request: counted and timed per operation and consistency level, and its
    /// failure counted when it was `unavailable` or a timeout.
    func coordinated(_ op: String, _ consistency: String, duration: Duration, failure: String?) {
        let dimensions = [("op", op), ("consistency", consistency)]
        Counter(label: "confab_coordinator_requests_total", dimensions: dimensions).increment()
        Timer(label: "confab_coordinator_request_duration_seconds", dimensions: dimensions).record(duration: duration)
        switch failure {
        case "unavailable": Counter(label: "confab_coordinator_unavailable_total", dimensions: dimensions).increment()
        case "timeout": Counter(label: "confab_coordinator_timeouts_total", dimensions: dimensions).increment()
        default: break
        }
    }
}
