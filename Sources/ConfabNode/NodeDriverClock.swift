import ConfabRing

/// The node's `DriverClock`: the cluster service's monotonic clock; deadlines go to the node's
/// one `RequestDeadlines` queue (millisecond buckets and one armed timer), not a scheduled task each.
struct NodeDriverClock: DriverClock {
    let ring: ClusterService
    let deadlines: RequestDeadlines

    func now() -> RingInstant { ring.now() }

    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        deadlines.schedule(at: deadline, body)
    }
}
