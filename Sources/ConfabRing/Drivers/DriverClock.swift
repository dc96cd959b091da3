/// The time a request driver reads and the one deadline it schedules. The node's clock is its
/// monotonic clock with event-loop timers; the simulation's is its event queue, so a deadline
/// fires at the same simulated instant on every replay of a seed.
package protocol DriverClock: Sendable {
    func now() -> RingInstant

    /// Calls `body` once, at about `deadline` (a driver checks `now()` and re-arms when it fires
    /// early), unless the returned timer is cancelled first.
    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer
}

/// A scheduled deadline that can be cancelled (a driver cancels it when it finishes early).
package struct DriverTimer: Sendable {
    private let cancelAction: @Sendable () -> Void

    package init(cancel: @escaping @Sendable () -> Void) { self.cancelAction = cancel }

    package func cancel() { cancelAction() }
}
