/// Bounds what catch-up costs per user (issue 12). A `sync` reads the user's chat list and then
/// every chat in it (1 + N reads for N chats), and any number of devices or long-poll sessions may
/// ask at once. Here a user's syncs run one at a time on a server and are paced by a token bucket
/// (`ChatService.Limits.syncsPerSecond`, `syncBurst`): a sync over the budget waits for its turn
/// rather than being refused, because a device that misses a sync answer misses messages. Only
/// past `maxWaiting` queued syncs of one user (more than any honest set of devices asks for) is a
/// sync refused with `rate_limited`.
final class SyncGate: Sendable {
    private let turns: KeyedTurns
    private let limiter: RateLimiter
    /// How the gate waits for the bucket to refill (tests advance a manual clock instead).
    private let sleep: @Sendable (Duration) async throws -> Void

    var maxWaiting: Int { turns.maxWaiting }

    init(
        limiter: RateLimiter, maxWaiting: Int = 16,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.limiter = limiter
        self.turns = KeyedTurns(maxWaiting: maxWaiting)
        self.sleep = sleep
    }

    /// Runs `body` when it is `userId`'s turn and the budget allows.
    func run<T: Sendable>(_ userId: String, _ body: () async throws -> T) async throws -> T {
        let answer = try await turns.run(userId) { () async throws -> T in
            // One wait for the bucket to hold a token, then on: the wait is what the budget asks,
            // and a clock that does not move with real time (a test's, a stepped one) cannot hold
            // a sync forever.
            if let wait = limiter.retryAfter(userId) {
                try await sleep(.microseconds(max(1, Int64((wait * 1_000_000).rounded(.up)))))
                _ = limiter.retryAfter(userId)
            }
            return try await body()
        }
        guard let answer else {
            throw ChatError(
                .rateLimited,
                "\(maxWaiting) catch-up requests of yours are already waiting on this server; sync again once one answers",
                retryAfterSeconds: 1)
        }
        return answer
    }

    /// Syncs of `userId` waiting behind the running one.
    func waiting(_ userId: String) -> Int { turns.waiting(userId) }
}
