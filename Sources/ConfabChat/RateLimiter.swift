import ConfabEngine
import Synchronization

/// A token bucket per user: `ratePerSecond` tokens refill continuously up to `burst`; each send
/// spends one. Refused sends store nothing. Time comes from the injected clock. Buckets of users
/// who have been idle long enough to be full again are dropped, so memory follows active users.
final class RateLimiter: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var updatedMicros: Int64
    }

    let ratePerSecond: Double
    let burst: Double
    private let clock: any ChatClock
    private struct State: Sendable {
        var buckets: [String: Bucket] = [:]
        var prune = PruneSchedule(floor: 10_000)
    }

    private let state = Mutex(State())

    /// Sweeps for idle buckets so far, and buckets held (for tests).
    var sweeps: Int { state.withLock { $0.prune.sweeps } }
    var bucketCount: Int { state.withLock { $0.buckets.count } }

    init(ratePerSecond: Double, burst: Double, clock: any ChatClock) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.clock = clock
    }

    /// Spends a token of `userId`'s bucket; false when it is empty.
    func allow(_ userId: String, cost: Double = 1) -> Bool { retryAfter(userId, cost: cost) == nil }

    /// Spends a token of `key`'s bucket and answers nil, or, when it is empty, answers the
    /// seconds until it holds one again (nothing spent).
    func retryAfter(_ key: String, cost: Double = 1) -> Double? {
        let now = clock.nowMicros()
        return state.withLock { s in
            var bucket = s.buckets[key] ?? Bucket(tokens: burst, updatedMicros: now)
            let elapsed = Double(max(0, now - bucket.updatedMicros)) / 1_000_000
            bucket.tokens = min(burst, bucket.tokens + elapsed * ratePerSecond)
            bucket.updatedMicros = now
            var wait: Double? = nil
            if bucket.tokens >= cost { bucket.tokens -= cost } else { wait = (cost - bucket.tokens) / ratePerSecond }
            s.buckets[key] = bucket
            if s.prune.isDue(count: s.buckets.count) {
                prune(&s.buckets, now: now)
                s.prune.swept(remaining: s.buckets.count)
            }
            return wait
        }
    }

    private func prune(_ b: inout [String: Bucket], now: Int64) {
        let fullAfter = Int64(burst / ratePerSecond * 1_000_000)
        b = b.filter { now - $0.value.updatedMicros < fullAfter }
    }
}
