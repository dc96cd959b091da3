import Synchronization

/// Bounds what catch-up costs per user (issue 12). A `sync` reads the user's chat list and then
/// every chat in it (1 + N reads for N chats), and any number of devices or long-poll sessions may
/// ask at once. Here a user's syncs run one at a time on a server and are paced by a token bucket
/// (`ChatService.Limits.syncsPerSecond`, `syncBurst`): a sync over the budget waits for its turn
/// rather than being refused, because a device that misses a sync answer misses messages. Only
/// past `maxWaiting` queued syncs of one user (more than any honest set of devices asks for) is a
/// sync refused with `rate_limited`.
final class SyncGate: Sendable {
    private struct Lane: Sendable {
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }

    let maxWaiting: Int
    private let limiter: RateLimiter
    /// How the gate waits for the bucket to refill (tests advance a manual clock instead).
    private let sleep: @Sendable (Duration) async throws -> Void
    /// A lane exists while one of the user's syncs runs; it holds the syncs waiting behind it.
    private let lanes = Mutex<[String: Lane]>([:])

    init(
        limiter: RateLimiter, maxWaiting: Int = 16,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.limiter = limiter
        self.maxWaiting = maxWaiting
        self.sleep = sleep
    }

    /// Runs `body` when it is `userId`'s turn and the budget allows.
    func run<T: Sendable>(_ userId: String, _ body: () async throws -> T) async throws -> T {
        let refused = await enter(userId)
        if refused {
            throw ChatError(
                .rateLimited,
                "\(maxWaiting) catch-up requests of yours are already waiting on this server; sync again once one answers",
                retryAfterSeconds: 1)
        }
        defer { leave(userId) }
        // One wait for the bucket to hold a token, then on: the wait is what the budget asks, and a
        // clock that does not move with real time (a test's, a stepped one) cannot hold a sync forever.
        if let wait = limiter.retryAfter(userId) {
            try await sleep(.microseconds(max(1, Int64((wait * 1_000_000).rounded(.up)))))
            _ = limiter.retryAfter(userId)
        }
        return try await body()
    }

    /// Syncs of `userId` waiting behind the running one.
    func waiting(_ userId: String) -> Int { lanes.withLock { $0[userId]?.waiters.count ?? 0 } }

    private enum Entry { case now, queued, refused }

    /// Waits for `userId`'s turn; true when the queue is full (refused, nothing queued).
    private func enter(_ userId: String) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let entry: Entry = lanes.withLock { l in
                guard var lane = l[userId] else {
                    l[userId] = Lane()
                    return .now
                }
                guard lane.waiters.count < maxWaiting else { return .refused }
                lane.waiters.append(c)
                l[userId] = lane
                return .queued
            }
            switch entry {
            case .now: c.resume(returning: false)
            case .refused: c.resume(returning: true)
            case .queued: break
            }
        }
    }

    /// Hands the turn to the next waiting sync, or closes the lane.
    private func leave(_ userId: String) {
        let next: CheckedContinuation<Bool, Never>? = lanes.withLock { l in
            guard var lane = l[userId], !lane.waiters.isEmpty else {
                l[userId] = nil
                return nil
            }
            let first = lane.waiters.removeFirst()
            l[userId] = lane
            return first
        }
        next?.resume(returning: false)
    }
}
