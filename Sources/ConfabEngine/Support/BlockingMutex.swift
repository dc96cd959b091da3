#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The engine's lock for threads that block (docs/concurrency.md): a pthread mutex, with
/// `BlockingCondition`s bound to it. The WAL's group commit, the engine's flush and compaction
/// threads and writers held for room park here rather than in Swift concurrency, so a burst of
/// blocked writers never starves the cooperative thread pool; locks held across file I/O (the
/// write, flush, compaction and manifest locks) are these too.
///
/// Timed waits use CLOCK_MONOTONIC (on Linux), so a wall-clock jump cannot stall periodic sync.
package final class BlockingMutex: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
