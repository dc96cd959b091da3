import ConfabRing
import NIOCore

/// The node's `DriverClock`: the cluster service's monotonic clock, deadlines as event-loop timers
/// (a scheduled task each, not a sleeping task per request).
struct NodeDriverClock: DriverClock {
    let ring: ClusterService
    let timers: any EventLoopGroup

    func now() -> RingInstant { ring.now() }

    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let wait = max(.zero, deadline - ring.now())
        let (seconds, attoseconds) = wait.components
        let scheduled = timers.next().scheduleTask(
            in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        ) { body() }
        return DriverTimer { scheduled.cancel() }
    }
}
