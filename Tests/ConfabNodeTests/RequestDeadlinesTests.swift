import ConfabRing
import ConfabTransport
import NIOEmbedded
import Synchronization
import Testing

@testable import ConfabNode

/// `RequestDeadlines`: millisecond buckets and one armed timer for every coordinated request's
/// deadline.
@Suite struct RequestDeadlinesTests {
    /// Deadlines scheduled in random order (seeded), half of them cancelled: every other one fires
    /// exactly once, never before its time and at most one step after; no cancelled one fires;
    /// nothing is left waiting at the end. An earlier deadline scheduled after a later one was
    /// armed still fires on time.
    @Test(arguments: [1, 2, 3]) func deadlinesFireOnceOnTimeAndCancelledOnesNever(seed: UInt64) {
        let loop = EmbeddedEventLoop()
        let clock = Mutex<Int64>(0)
        let deadlines = RequestDeadlines(loop: loop, now: { RingInstant(nanoseconds: clock.withLock { $0 }) })
        var rng = SplitMix64(seed: seed)
        let fired = Mutex<[Int: [Int64]]>([:])
        var expected: [Int: Int64] = [:]
        var timers: [DriverTimer] = []
        let step: Int64 = 1_000_000
        for i in 0..<2_000 {
            // Later ones first, then earlier: each earlier one must re-arm the loop's timer.
            let at = Int64(2_000 - i) * 500_000 + Int64(rng.next() % 1_000_000)
            timers.append(
                deadlines.schedule(at: RingInstant(nanoseconds: at)) {
                    let now = clock.withLock { $0 }
                    fired.withLock { $0[i, default: []].append(now) }
                })
            expected[i] = at
        }
        var cancelled: Set<Int> = []
        for i in 0..<2_000 where rng.next() % 2 == 0 {
            timers[i].cancel()
            cancelled.insert(i)
        }
        for _ in 0..<1_100 {
            clock.withLock { $0 += step }
            loop.advanceTime(by: .nanoseconds(step))
        }
        let f = fired.withLock { $0 }
        #expect(Set(f.keys).isDisjoint(with: cancelled), "a cancelled deadline fired")
        #expect(f.count == 2_000 - cancelled.count)
        for (i, times) in f {
            let at = expected[i]!
            #expect(times.count == 1, "deadline \(i) fired \(times.count) times")
            #expect(times[0] >= at && times[0] < at + step, "deadline \(i) at \(at) fired at \(times[0])")
        }
        #expect(deadlines.count == 0)
    }

    /// Completed requests (cancelled deadlines) leave as their deadlines fall due, a millisecond's
    /// worth per firing — not all at once at the first firing, which on a node at 20,000 writes/s
    /// was two seconds of entries (one write timeout) in one pass on an event loop, every two
    /// seconds. Before buckets the first firing here dropped all 1,999 cancelled entries.
    @Test func aFiringTakesOnlyWhatIsDue() {
        let loop = EmbeddedEventLoop()
        let clock = Mutex<Int64>(0)
        let deadlines = RequestDeadlines(loop: loop, now: { RingInstant(nanoseconds: clock.withLock { $0 }) })
        let step = DeadlineBuckets<Int>.bucketNanoseconds
        let fired = Mutex(0)
        var timers: [DriverTimer] = []
        for i in 1...2_000 {
            timers.append(
                deadlines.schedule(at: RingInstant(nanoseconds: Int64(i) * step)) { fired.withLock { $0 += 1 } })
        }
        for timer in timers.dropLast() { timer.cancel() }
        for i in 1...2_000 {
            clock.withLock { $0 += step }
            loop.advanceTime(by: .nanoseconds(step))
            #expect(deadlines.count == 2_000 - i, "after \(i) ms")
        }
        #expect(fired.withLock { $0 } == 1)
    }
}

/// `DeadlineBuckets`' one armed timer: armed for the earliest bucket, re-armed only for an earlier
/// one, and free again once the timer that is armed fires (not a stale one).
@Suite struct DeadlineBucketsTimerTests {
    @Test func oneTimerIsArmedForTheEarliestBucket() throws {
        var b = DeadlineBuckets<Int>()
        #expect(b.timerToArm() == nil, "nothing held, nothing to arm")
        b.insert(1, deadline: 5_000_000)
        let armedFirst = b.timerToArm()
        let first = try #require(armedFirst)
        #expect(first.at == 5_000_000)
        b.insert(2, deadline: 9_000_000)
        #expect(b.timerToArm() == nil, "a later deadline does not re-arm")
        b.insert(3, deadline: 2_500_000)
        let armedEarlier = b.timerToArm()
        let earlier = try #require(armedEarlier, "an earlier deadline re-arms")
        #expect(earlier.at == 3_000_000 && earlier.id != first.id)
        b.fired(first.id)
        #expect(b.timerToArm() == nil, "a stale timer's firing leaves the newer one armed")
        b.fired(earlier.id)
        #expect(b.takeDue(now: 3_000_000) == [3])
        let armedNext = b.timerToArm()
        let next = try #require(armedNext)
        #expect(next.at == 5_000_000)
    }
}
