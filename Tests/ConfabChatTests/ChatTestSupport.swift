import ConfabEngine
import Foundation
import NIOConcurrencyHelpers

@testable import ConfabChat

/// Records every event delivered, per user, instead of sending it anywhere.
final class RecordingDelivery: Delivery {
    private let events = NIOLockedValueBox<[(String, ServerEvent)]>([])

    func deliver(_ event: ServerEvent, to users: Set<String>, excludingDevice: UInt64?) async {
        events.withLockedValue { e in for u in users.sorted() { e.append((u, event)) } }
    }

    func events(for user: String) -> [ServerEvent] { events.withLockedValue { $0.filter { $0.0 == user }.map(\.1) } }

    func messages(for user: String) -> [MessageRecord] {
        events(for: user).compactMap { if case .message(let m) = $0 { return m } else { return nil } }
    }
}

/// The chat services over an in-memory ring, a manual clock and a recording delivery.
struct ServiceFixture {
    let clock = ManualClock()
    let storage: InMemoryRingStorage
    let delivery = RecordingDelivery()
    let accounts: AccountService
    let chats: ChatService
    /// Microseconds syncs waited for their budget (the manual clock moves by as much).
    let syncWaitedMicros = NIOLockedValueBox<Int64>(0)

    init(
        sendsPerSecond: Double = 1000, burst: Double = 1000, limits: ChatService.Limits = .init(),
        lease: (any OrderingLease)? = nil
    ) {
        storage = InMemoryRingStorage(clock: clock)
        let store = ChatCatalog(storage: storage, clock: clock)
        accounts = AccountService(
            store: store, hasher: PasswordHasher(rounds: 1000),
            signer: TokenSigner(secret: Array("test-secret-0123456789".utf8), clock: clock), clock: clock)
        chats = ChatService(
            store: store, delivery: delivery,
            limiter: RateLimiter(ratePerSecond: sendsPerSecond, burst: burst, clock: clock), clock: clock,
            limits: limits,
            syncSleep: { [clock, syncWaitedMicros] d in
                let micros = d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
                syncWaitedMicros.withLockedValue { $0 += micros }
                clock.advance(micros: micros)
            }, lease: lease)
    }

    /// Registers users (password "password-<id>") and returns their ids.
    @discardableResult
    func users(_ ids: [String]) async throws -> [String] {
        var out: [String] = []
        for id in ids { out.append(try await accounts.register(handle: id, password: "password-\(id)").userId) }
        return out
    }

    /// Writes user rows directly (fast: no password hashing) for tests that need many users.
    func quickUsers(_ ids: [String]) async throws {
        let store = ChatCatalog(storage: storage, clock: clock)
        for id in ids {
            try await store.putUser(UserRecord(userId: id, passwordHash: "x", createdAt: clock.nowMicros()))
        }
    }
}

/// The code of the `ChatError` `body` throws; nil if it succeeds or throws something else.
func chatErrorCode<T>(_ body: () async throws -> T) async -> ChatError.Code? {
    do {
        _ = try await body()
        return nil
    } catch let e as ChatError {
        return e.code
    } catch {
        return nil
    }
}
