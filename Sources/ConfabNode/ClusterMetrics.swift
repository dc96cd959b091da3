import ConfabRing
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

    /// The coordinator instruments for each operation and level, made once: swift-metrics
    /// resolves a label and its dimensions through the backend's locked registry on every
    /// `Counter(label:dimensions:)`, which profiling found on every coordinated request.
    private let coordinator: [CoordinatedOp: [ConsistencyLevel: CoordinatorInstruments]]

    init() {
        var byOp: [CoordinatedOp: [ConsistencyLevel: CoordinatorInstruments]] = [:]
        for op in CoordinatedOp.allCases {
            var byLevel: [ConsistencyLevel: CoordinatorInstruments] = [:]
            for level in ConsistencyLevel.allCases {
                byLevel[level] = CoordinatorInstruments(op: op.rawValue, consistency: level.rawValue)
            }
            byOp[op] = byLevel
        }
        coordinator = byOp
    }

    func coordinatorFailure(_ code: String) {
        Counter(label: "confab_coordinator_failures_total", dimensions: [("code", code)]).increment()
    }

    /// One coordinated request: counted and timed per operation and consistency level, and its
    /// failure counted when it was `unavailable` or a timeout.
    func coordinated(_ op: CoordinatedOp, _ consistency: ConsistencyLevel, duration: Duration, failure: String?) {
        guard let instruments = coordinator[op]?[consistency] else { return }
        instruments.requests.increment()
        instruments.duration.record(duration: duration)
        switch failure {
        case "unavailable": instruments.unavailable.increment()
        case "timeout": instruments.timeouts.increment()
        default: break
        }
    }
}

/// What a coordinated request did, as its `op` dimension spells it.
enum CoordinatedOp: String, CaseIterable, Sendable {
    case read, write
}

/// The four `confab_coordinator_*` instruments of one operation at one consistency level.
private struct CoordinatorInstruments: Sendable {
    let requests: Counter
    let duration: Timer
    let unavailable: Counter
    let timeouts: Counter

    init(op: String, consistency: String) {
        let dimensions = [("op", op), ("consistency", consistency)]
        requests = Counter(label: "confab_coordinator_requests_total", dimensions: dimensions)
        duration = Timer(label: "confab_coordinator_request_duration_seconds", dimensions: dimensions)
        unavailable = Counter(label: "confab_coordinator_unavailable_total", dimensions: dimensions)
        timeouts = Counter(label: "confab_coordinator_timeouts_total", dimensions: dimensions)
    }
}
