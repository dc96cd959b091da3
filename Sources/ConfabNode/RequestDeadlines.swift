import ConfabRing
import HeapModule
import NIOCore
import Synchronization

/// The deadlines of every request this node coordinates: deadlines rounded up to the next
/// millisecond and kept in one bucket per millisecond, a heap of the buckets' times, and one
/// event-loop timer armed for the earliest bucket. Cancelling is a flag (and drops the callback
/// with what it holds); a cancelled entry leaves with its bucket.
///
/// Why not a scheduled task per request: every request cancels its deadline when it completes,
/// and NIO removes a cancelled task from its loop's queue by linear search, so with thousands of
/// requests in flight (a saturated node) each completion scanned thousands of timers.
///
/// Why buckets, not a heap of every deadline: nearly every deadline is cancelled (the request
/// completes first), and a heap can only drop a cancelled entry from its top. The heap this
/// replaces dropped every cancelled entry above the first live one whenever a timer fired — two
/// seconds of completed writes (40,000 entries at 20,000 writes/s) in one pass on an event loop,
/// every write timeout. `perf` of `confab-bench ring --quick` caught one such firing holding a
/// single node's event loop for 86 ms (43 consecutive samples at 499 Hz), just as the open-loop
/// phase began, and another for 22 ms two seconds later. With buckets a timer takes only the
/// buckets that are due, so the work of one firing is bounded by what fell due since the last.
final class RequestDeadlines: Sendable {
    /// One bucket's width: a deadline fires at most this much after its time.
    static let bucketNanoseconds: Int64 = 1_000_000

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

    private struct State {
        /// Deadlines by bucket (its end, in buckets since the clock's zero).
        var buckets: [Int64: [Pending]] = [:]
        /// The bucket numbers in `buckets`, earliest first.
        var order = Heap<Int64>()
        var count = 0
        var seq: UInt64 = 0
        /// The event-loop timer that will fire next, if any (its id and bucket).
        var armed: (id: UInt64, bucket: Int64)?

        /// Arms a timer for the earliest bucket unless one at least as early is armed.
        mutating func rearm() -> (id: UInt64, bucket: Int64)? {
            guard let first = order.min else { return nil }
            if let armed, armed.bucket <= first { return nil }
            seq &+= 1
            armed = (seq, first)
            return armed
        }
    }

    private let state = Mutex(State())
    private let loop: any EventLoop
    private let now: @Sendable () -> RingInstant

    init(loop: any EventLoop, now: @escaping @Sendable () -> RingInstant) {
        self.loop = loop
        self.now = now
    }

    /// Deadlines waiting (cancelled ones not yet dropped included), for tests.
    var count: Int { state.withLock { $0.count } }

    /// The bucket a deadline belongs to: the first bucket end at or after it.
    private static func bucket(_ deadline: RingInstant) -> Int64 {
        let q = deadline.nanoseconds / bucketNanoseconds
        let r = deadline.nanoseconds % bucketNanoseconds
        return r > 0 ? q + 1 : q
    }

    /// Runs `body` on this queue's event loop once `deadline` has passed (at most one bucket
    /// later), unless cancelled first.
    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let pending = Pending()
        pending.body.withLock { $0 = body }
        let bucket = Self.bucket(deadline)
        let arm = state.withLock { s in
            if s.buckets[bucket] == nil { s.order.insert(bucket) }
            s.buckets[bucket, default: []].append(pending)
            s.count += 1
            return s.rearm()
        }
        if let arm { self.arm(arm) }
        return DriverTimer { _ = pending.take() }
    }

    private func arm(_ timer: (id: UInt64, bucket: Int64)) {
        let wait = max(0, timer.bucket * Self.bucketNanoseconds - now().nanoseconds)
        loop.scheduleTask(in: .nanoseconds(wait)) { self.fire(timer.id) }
    }

    private func fire(_ id: UInt64) {
        let t = now().nanoseconds
        var due: [[Pending]] = []
        let next = state.withLock { s in
            if s.armed?.id == id { s.armed = nil }
            while let first = s.order.min, first * Self.bucketNanoseconds <= t {
                s.order.removeMin()
                if let entries = s.buckets.removeValue(forKey: first) {
                    s.count -= entries.count
                    due.append(entries)
                }
            }
            return s.rearm()
        }
        for entries in due {
            for pending in entries { pending.take()?() }
        }
        if let next { arm(next) }
    }
}
