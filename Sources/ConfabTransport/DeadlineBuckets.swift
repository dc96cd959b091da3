import HeapModule

/// Deadlines kept in one bucket per millisecond (each deadline rounded up to its bucket's end)
/// and a heap of the buckets' ends: what the node's request deadlines and each connection's
/// request timeouts share, with one event-loop timer armed for the earliest bucket.
///
/// Why buckets: nearly every deadline is cancelled — its request completes first — and neither
/// alternative drops a cancelled one cheaply. NIO removes a cancelled scheduled task from its
/// loop's queue by linear search (every completion scanned every timer in flight), and a heap of
/// deadlines can drop a cancelled entry only from its top, so a firing dropped every completed
/// request above the first live one at once (86 ms on one event loop, `RequestDeadlines`).
/// Here a cancelled entry stays in its bucket, checked and dropped when the bucket falls due, so
/// a firing does the work of one millisecond's deadlines.
package struct DeadlineBuckets<Entry> {
    /// One bucket's width: a deadline is taken at most this long after it passes.
    package static var bucketNanoseconds: Int64 { 1_000_000 }

    private var buckets: [Int64: [Entry]] = [:]
    /// The bucket numbers in `buckets`, earliest first.
    private var order = Heap<Int64>()
    /// Entries held, cancelled ones not yet taken included.
    package private(set) var count = 0
    /// The one timer its owner has armed for the earliest bucket, if any (id and time).
    private var armed: (id: UInt64, at: Int64)?
    private var timers: UInt64 = 0

    package init() {}

    /// The end of the earliest bucket (in the deadlines' nanoseconds), if any.
    package var earliest: Int64? { order.min.map { $0 * Self.bucketNanoseconds } }

    /// Adds `entry` to the bucket of `deadline` (nanoseconds on any clock, the same for every
    /// call and for `takeDue`).
    package mutating func insert(_ entry: Entry, deadline: Int64) {
        let q = deadline / Self.bucketNanoseconds
        let bucket = deadline % Self.bucketNanoseconds > 0 ? q + 1 : q
        if buckets[bucket] == nil { order.insert(bucket) }
        buckets[bucket, default: []].append(entry)
        count += 1
    }

    /// Removes and returns the entries of every bucket that has ended by `now`, earliest first.
    package mutating func takeDue(now: Int64) -> [Entry] {
        var due: [Entry] = []
        while let first = order.min, first * Self.bucketNanoseconds <= now {
            order.removeMin()
            if let entries = buckets.removeValue(forKey: first) {
                count -= entries.count
                due.append(contentsOf: entries)
            }
        }
        return due
    }

    /// The timer to arm for the earliest bucket — recorded as armed — unless one at least as
    /// early is armed already, or nothing is held. Every owner arms exactly one timer this way.
    package mutating func timerToArm() -> (id: UInt64, at: Int64)? {
        guard let first = earliest else { return nil }
        if let armed, armed.at <= first { return nil }
        timers &+= 1
        armed = (timers, first)
        return armed
    }

    /// Timer `id` fired: nothing is armed unless a timer armed since (another id) still is.
    package mutating func fired(_ id: UInt64) {
        if armed?.id == id { armed = nil }
    }

    package mutating func removeAll() {
        buckets.removeAll()
        order = Heap()
        count = 0
    }
}
