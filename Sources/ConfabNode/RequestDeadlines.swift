import ConfabRing
import HeapModule
import NIOCore
import Synchronization

/// The deadlines of every request this node coordinates: one heap, and one event-loop timer armed
/// for the earliest deadline. Cancelling is a flag (and drops the callback with what it holds);
/// a cancelled entry leaves the heap when it reaches the top.
///
/// Why not a scheduled task per request: every request cancels its deadline when it completes,
/// and NIO removes a cancelled task from its loop's queue by linear search, so with thousands of
/// requests in flight (a saturated node) each completion scanned thousands of timers; the heap
/// re-ordering under it showed in the read profile (`Heap._heapify` under `swift_retain`).
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

    private struct Entry: Comparable {
        var deadline: RingInstant
        var seq: UInt64
        var pending: Pending

        static func < (a: Entry, b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
        static func == (a: Entry, b: Entry) -> Bool { a.seq == b.seq }
    }

    private struct State {
        var heap = Heap<Entry>()
        var seq: UInt64 = 0
        /// The event-loop timer that will fire next, if any (its id and time).
        var armed: (id: UInt64, at: RingInstant)?
    }

    private let state = Mutex(State())
    private let loop: any EventLoop
    private let now: @Sendable () -> RingInstant

    init(loop: any EventLoop, now: @escaping @Sendable () -> RingInstant) {
        self.loop = loop
        self.now = now
    }

    /// Deadlines waiting (cancelled ones not yet dropped included), for tests.
    var count: Int { state.withLock { $0.heap.count } }

    /// Runs `body` on this queue's event loop once `deadline` has passed, unless cancelled first.
    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let pending = Pending()
        pending.body.withLock { $0 = body }
        let arm: UInt64? = state.withLock { s in
            s.seq &+= 1
            s.heap.insert(Entry(deadline: deadline, seq: s.seq, pending: pending))
            if let armed = s.armed, armed.at <= deadline { return nil }
            s.armed = (s.seq, deadline)
            return s.seq
        }
        if let arm { self.arm(arm, at: deadline) }
        return DriverTimer { _ = pending.take() }
    }

    private func arm(_ id: UInt64, at deadline: RingInstant) {
        let wait = max(0, deadline.nanoseconds - now().nanoseconds)
        loop.scheduleTask(in: .nanoseconds(wait)) { self.fire(id) }
    }

    private func fire(_ id: UInt64) {
        let t = now()
        var due: [Pending] = []
        let next: (id: UInt64, at: RingInstant)? = state.withLock { s in
            if s.armed?.id == id { s.armed = nil }
            while let first = s.heap.min, first.deadline <= t { due.append(s.heap.removeMin().pending) }
            while let first = s.heap.min, first.pending.body.withLock({ $0 == nil }) { _ = s.heap.removeMin() }
            guard let first = s.heap.min else { return nil }
            if let armed = s.armed, armed.at <= first.deadline { return nil }
            s.seq &+= 1
            s.armed = (s.seq, first.deadline)
            return s.armed
        }
        for pending in due { pending.take()?() }
        if let next { arm(next.id, at: next.at) }
    }
}
