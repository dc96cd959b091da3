import Synchronization

/// Wakes the chat openings that wait for this server's ownership lease when it may have changed
/// (a heartbeat or a directory refresh landed, or the lease was given up), instead of their
/// re-checking it every 50 ms.
final class LeaseChanges: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Changes so far; pass it to `wait(past:timeout:)` to wait for the next one.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// The lease may have changed: wakes every waiter.
    func signal() {
        let waiters = state.withLock { s in
            s.generation &+= 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Why a `wait` returned.
    enum Wake: Sendable, Equatable {
        case changed, timedOut, cancelled
    }

    /// Returns once a change after `seen` was signalled, `timeout` passed, or the task was
    /// cancelled, whichever comes first, and says which (tests check the reason, not the time a
    /// loaded machine took to run the waiter).
    @discardableResult
    func wait(past seen: UInt64, timeout: Duration) async -> Wake {
        await withTaskGroup(of: Wake.self) { group in
            group.addTask { (try? await Task.sleep(for: timeout)) == nil ? .cancelled : .timedOut }
            group.addTask { await self.change(past: seen) }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
    }

    private func change(past seen: UInt64) async -> Wake {
        let id = state.withLock { s in
            s.nextWaiter &+= 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                // Checked under the lock the cancellation handler takes: a cancel either came
                // before (seen here) or finds the waiter registered.
                let now = state.withLock { s -> Bool in
                    if s.generation != seen || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
        return state.withLock { $0.generation != seen } ? .changed : .cancelled
    }
}
