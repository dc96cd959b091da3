/// Decides locally whether a peer is alive from the rhythm of its heartbeats (Hayashibara et al.'s
/// phi accrual detector, as Cassandra's `FailureDetector` implements it).
///
/// For each endpoint it keeps the last `windowSize` inter-arrival intervals of heartbeats (a
/// heartbeat is any observed increase of the peer's gossip heartbeat version, directly or through
/// a third node). Cassandra models arrivals as exponentially distributed, so the suspicion level
/// after `Δt` without a heartbeat is `phi = Δt / mean × log10(e)`, and a peer is convicted when
/// `phi > threshold` (8 by default: with 1 s gossip about 18.4 s of silence).
///
/// Before enough samples exist the window is seeded with `initialInterval` (2 s, Cassandra's
/// `fd_initial_value_ms`), erring towards slow conviction rather than flapping; intervals longer
/// than `maxInterval` (a pause, a partition, a restart) are not recorded, so one outage does not
/// make the detector lenient afterwards.
package struct PhiAccrualFailureDetector: Sendable {
    package struct Configuration: Sendable, Hashable {
        package var threshold: Double = 8
        package var windowSize: Int = 1000
        package var initialInterval: Duration = .seconds(2)
        package var maxInterval: Duration = .seconds(2)
        package init() {}
    }

    /// log10(e): converts the exponential distribution's -ln(P) into Cassandra's base-10 phi.
    static let phiFactor = 0.4342944819032518

    /// The heartbeat history of one endpoint: a ring buffer of intervals with a running sum.
    struct ArrivalWindow: Sendable {
        var intervals: [Int64] = []
        var next = 0
        var sum: Int64 = 0
        var lastArrival: RingInstant?

        mutating func add(_ interval: Int64, capacity: Int) {
            if intervals.count < capacity {
                intervals.append(interval)
            } else {
                sum -= intervals[next]
                intervals[next] = interval
                next = (next + 1) % capacity
            }
            sum += interval
        }

        var mean: Double { intervals.isEmpty ? 0 : Double(sum) / Double(intervals.count) }
    }

    package var configuration: Configuration
    private var windows: [NodeID: ArrivalWindow] = [:]

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Records a heartbeat from `endpoint` observed at `now`.
    package mutating func heartbeat(from endpoint: NodeID, now: RingInstant) {
        var w = windows[endpoint] ?? ArrivalWindow()
        if let last = w.lastArrival {
            let interval = (now - last).nanoseconds
            if interval > 0, interval <= configuration.maxInterval.nanoseconds {
                w.add(interval, capacity: configuration.windowSize)
            }
        } else {
            w.add(configuration.initialInterval.nanoseconds, capacity: configuration.windowSize)
        }
        w.lastArrival = now
        windows[endpoint] = w
    }

    /// Suspicion that `endpoint` is down at `now`; 0 for an endpoint never heard from.
    package func phi(of endpoint: NodeID, now: RingInstant) -> Double {
        guard let w = windows[endpoint], let last = w.lastArrival, w.mean > 0 else { return 0 }
        let silence = Double(max(0, (now - last).nanoseconds))
        return Self.phiFactor * silence / w.mean
    }

    /// True while phi stays at or under the threshold (or the endpoint was never heard from).
    package func isAvailable(_ endpoint: NodeID, now: RingInstant) -> Bool {
        phi(of: endpoint, now: now) <= configuration.threshold
    }

    /// Forgets an endpoint's history (on restart with a new generation, or removal).
    package mutating func remove(_ endpoint: NodeID) {
        windows[endpoint] = nil
    }

    /// Mean recorded interval, for status displays.
    package func meanInterval(of endpoint: NodeID) -> Duration? {
        guard let w = windows[endpoint], w.mean > 0 else { return nil }
        return .nanoseconds(Int64(w.mean))
    }

    package func sampleCount(of endpoint: NodeID) -> Int { windows[endpoint]?.intervals.count ?? 0 }
}
