import ConfabEngine
import Testing

@testable import ConfabChat

/// Maps whose entries expire (rate-limit buckets, typing times, cached members) are swept at most
/// once per doubling, so a busy server does not pay a pass over every active user per request.
@Suite struct PruneScheduleTests {
    /// 30,000 users send within one refill time: all their buckets are live, so no sweep can drop
    /// one. Sweeping whenever more than 10,000 were held swept 20,000 times, each a pass over
    /// every bucket; sweeping per doubling sweeps twice. Once they are idle, the next sweep drops
    /// them: memory follows active users.
    @Test func aBusyLimiterSweepsOncePerDoubling() {
        let clock = ManualClock()
        let limiter = RateLimiter(ratePerSecond: 20, burst: 50, clock: clock)
        for u in 0..<30_000 { #expect(limiter.allow("user-\(u)")) }
        #expect(limiter.sweeps == 2)
        #expect(limiter.bucketCount == 30_000)

        clock.advance(seconds: 10)
        var u = 30_000
        while limiter.sweeps == 2 {
            #expect(limiter.allow("user-\(u)"))
            u += 1
        }
        // The third sweep came when the map had doubled (40,007 buckets) and kept only the users
        // active since the clock moved.
        #expect(u == 40_007, "the third sweep waited for the map to double")
        #expect(limiter.bucketCount == 10_007, "idle buckets were kept: \(limiter.bucketCount)")
    }

    /// The schedule by itself: no sweep below the floor; after a sweep, the next waits until the
    /// map has doubled from what was left (never below the floor).
    @Test func theScheduleDoublesFromWhatWasLeft() {
        var s = PruneSchedule(floor: 100)
        #expect(!s.isDue(count: 100))
        #expect(s.isDue(count: 101))
        s.swept(remaining: 101)
        #expect(!s.isDue(count: 202))
        #expect(s.isDue(count: 203))
        s.swept(remaining: 3)
        #expect(!s.isDue(count: 100))
        #expect(s.isDue(count: 101))
        #expect(s.sweeps == 2)
    }
}
