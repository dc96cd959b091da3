import Testing

@testable import ConfabChat

/// `LeaseChanges`: what a chat opening waiting for the ownership lease waits on, instead of
/// re-checking it every 50 ms.
@Suite struct LeaseChangesTests {
    /// A waiter wakes on the signal, not at its timeout; a waiter whose generation is already
    /// past returns at once; one with nothing signalled returns at its timeout; a cancelled one
    /// returns as cancelled. Each is told apart by the reason `wait` returns: this test asserted
    /// "woke within 30 s" before, and a CI run beside a CPU hog, with a hundred tests starting on
    /// two cooperative threads, took 33.7 s to run a waiter the signal had already woken.
    @Test func waitersWakeOnASignalAtTheirTimeoutOrWhenCancelled() async throws {
        let changes = LeaseChanges()
        let seen = changes.generation
        let waiter = Task { await changes.wait(past: seen, timeout: .seconds(60)) }
        // Signal only once the waiter is registered or about to be: either way it must wake.
        changes.signal()
        #expect(await waiter.value == .changed, "the signal did not wake the waiter")

        #expect(
            await changes.wait(past: seen, timeout: .seconds(60)) == .changed,
            "a change already signalled did not return at once")

        let quiet = ContinuousClock.now
        #expect(await changes.wait(past: changes.generation, timeout: .milliseconds(200)) == .timedOut)
        #expect(ContinuousClock.now - quiet >= .milliseconds(200))

        let cancelled = Task { await changes.wait(past: changes.generation, timeout: .seconds(60)) }
        cancelled.cancel()
        #expect(await cancelled.value == .cancelled, "a cancelled waiter kept waiting")
    }
}
