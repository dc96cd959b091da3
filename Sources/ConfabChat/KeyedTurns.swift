import Synchronization

/// One at a time per key, first come first served, with a bounded queue: a user's syncs
/// (`SyncGate`), registrations of one handle (`AccountService`).
final class KeyedTurns: Sendable {
    private struct Lane: Sendable {
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }

    let maxWaiting: Int
    /// A lane exists while one holder of its key runs; it holds those waiting behind it.
    private let lanes = Mutex<[String: Lane]>([:])

    init(maxWaiting: Int) { self.maxWaiting = maxWaiting }

    /// Runs `body` when it is `key`'s turn; nil (and `body` not run) when `maxWaiting` are
    /// already queued for the key.
    func run<T: Sendable>(_ key: String, _ body: () async throws -> T) async rethrows -> T? {
        guard await enter(key) else { return nil }
        defer { leave(key) }
        return try await body()
    }

    /// Holders of `key` waiting behind the running one.
    func waiting(_ key: String) -> Int { lanes.withLock { $0[key]?.waiters.count ?? 0 } }

    private enum Entry { case now, queued, refused }

    /// Waits for `key`'s turn; false when the queue is full (refused, nothing queued).
    private func enter(_ key: String) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let entry: Entry = lanes.withLock { l in
                guard var lane = l[key] else {
                    l[key] = Lane()
                    return .now
                }
                guard lane.waiters.count < maxWaiting else { return .refused }
                lane.waiters.append(c)
                l[key] = lane
                return .queued
            }
            switch entry {
            case .now: c.resume(returning: true)
            case .refused: c.resume(returning: false)
            case .queued: break
            }
        }
    }

    /// Hands the turn to the next waiter, or closes the lane.
    private func leave(_ key: String) {
        let next: CheckedContinuation<Bool, Never>? = lanes.withLock { l in
            guard var lane = l[key], !lane.waiters.isEmpty else {
                l[key] = nil
                return nil
            }
            let first = lane.waiters.removeFirst()
            l[key] = lane
            return first
        }
        next?.resume(returning: true)
    }
}
