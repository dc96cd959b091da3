import ConfabRing
import ConfabTransport
import NIOCore
import Synchronization

/// The deadlines of every request this node coordinates, in `DeadlineBuckets` (one bucket per
/// millisecond) with one event-loop timer armed for the earliest bucket. Cancelling is a flag
/// (and drops the callback with what it holds); a cancelled entry leaves with its bucket.
///
/// Why not a scheduled task per request: every request cancels its deadline when it completes,
/// and NIO removes a cancelled task from its loop's queue by linear search, so with thousands of
/// requests in flight (a saturated node) each completion scanned thousands of timers.
///
/// Why buckets, not a heap of every deadline: a heap can drop a cancelled entry only from its
/// top, so each firing dropped every completed request above the first live one — two seconds of
/// writes (one write timeout, 40,000 entries at 20,000 writes/s) in one pass on an event loop.
/// `perf` of `confab-bench ring --quick` caught one such firing holding a single node's event loop
/// for 86 ms (43 consecutive samples at 499 Hz), just as the open-loop phase began, and another
/// for 22 ms two seconds later. With buckets a firing takes only what fell due since the last.
final class RequestDeadlines: Sendable {
    /// One deadline's callback, until it runs or is cancelled.
    private final class Pending: Sendable {
        let body = Mutex<(@Sendable () -> Void)?>(nil)

        func take() -> (@Sendable () -> Void)? {
            body.withLock { b in
                defer { b = nil }
                return b
            }
        }
    }

    private let state = Mutex(DeadlineBuckets<Pending>())
    private let loop: any EventLoop
    private let now: @Sendable () -> RingInstant

    init(loop: any EventLoop, now: @escaping @Sendable () -> RingInstant) {
        self.loop = loop
        self.now = now
    }

    /// Deadlines waiting (cancelled ones not yet dropped included), for tests.
    var count: Int { state.withLock { $0.count } }

    /// Runs `body` on this queue's event loop once `deadline` has passed (at most one bucket
    /// later), unless cancelled first.
    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let pending = Pending()
        pending.body.withLock { $0 = body }
        let arm = state.withLock { s in
            s.insert(pending, deadline: deadline.nanoseconds)
            return s.timerToArm()
        }
        if let arm { self.arm(arm) }
        return DriverTimer { _ = pending.take() }
    }

    private func arm(_ timer: (id: UInt64, at: Int64)) {
        let wait = max(0, timer.at - now().nanoseconds)
        loop.scheduleTask(in: .nanoseconds(wait)) { self.fire(timer.id) }
    }

    private func fire(_ id: UInt64) {
        let t = now().nanoseconds
        let (due, next) = state.withLock { s in
            s.fired(id)
            return (s.takeDue(now: t), s.timerToArm())
        }
        for pending in due { pending.take()?() }
        if let next { arm(next) }
    }
}
