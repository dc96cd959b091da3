import Synchronization
import Testing

@testable import ConfabChat

/// `LeaseChanges`: what a chat opening waiting for the ownership lease waits on, instead of
/// re-checking it every 50 ms.
@Suite struct LeaseChangesTests {
    /// A waiter wakes on the signal, long before its timeout; a waiter whose generation is
    /// already past returns at once; one with nothing signalled returns at its timeout; a
    /// cancelled one returns at once.
    @Test func waitersWakeOnASignalAtTheirTimeoutOrWhenCancelled() async throws {
        let changes = LeaseChanges()
        let seen = changes.generation
        let woke = Mutex(false)
        let waiter = Task {
            await changes.wait(past: seen, timeout: .seconds(60))
            woke.withLock { $0 = true }
        }
        // Signal only once the waiter is registered or about to be: either way it must wake.
        changes.signal()
        let started = ContinuousClock.now
        await waiter.value
        #expect(woke.withLock { $0 })
        #expect(ContinuousClock.now - started < .seconds(30), "the signal did not wake the waiter")

        let past = ContinuousClock.now
        await changes.wait(past: seen, timeout: .seconds(60))
        #expect(ContinuousClock.now - past < .seconds(30), "a change already signalled did not return at once")

        let quiet = ContinuousClock.now
        await changes.wait(past: changes.generation, timeout: .milliseconds(200))
        #expect(ContinuousClock.now - quiet >= .milliseconds(200))

        let cancelled = Task { await changes.wait(past: changes.generation, timeout: .seconds(60)) }
        cancelled.cancel()
        let c = ContinuousClock.now
        await cancelled.value
        #expect(ContinuousClock.now - c < .seconds(30), "a cancelled waiter kept waiting")
    }
}
