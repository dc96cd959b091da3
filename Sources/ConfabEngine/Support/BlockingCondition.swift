#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A condition variable bound to a `BlockingMutex`; wait only while holding that mutex.
package final class BlockingCondition: @unchecked Sendable {
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private let mutex: BlockingMutex

    package init(_ mutex: BlockingMutex) {
        self.mutex = mutex
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if os(Linux)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deinitialize(count: 1)
        cond.deallocate()
    }

    package func wait() { pthread_cond_wait(cond, mutex.mutex) }

    /// Waits until signalled or until the monotonic clock reaches `deadlineNanos` (see
    /// `BlockingCondition.nowNanos`); spurious wake-ups are possible, so callers re-check their state.
    package func wait(untilNanos deadlineNanos: UInt64) {
        var ts = timespec()
        ts.tv_sec = Int(deadlineNanos / 1_000_000_000)
        ts.tv_nsec = Int(deadlineNanos % 1_000_000_000)
        _ = pthread_cond_timedwait(cond, mutex.mutex, &ts)
    }

    package func signal() { pthread_cond_signal(cond) }
    package func broadcast() { pthread_cond_broadcast(cond) }

    /// The clock `wait(untilNanos:)` measures against.
    package static func nowNanos() -> UInt64 {
        var ts = timespec()
        #if os(Linux)
            clock_gettime(CLOCK_MONOTONIC, &ts)
        #else
            clock_gettime(CLOCK_REALTIME, &ts)
        #endif
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
