import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import Logging
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

/// A `RingStorage` over a shared store whose next write matching a predicate waits at a gate
/// until the test releases it (one chat server's slow or late request).
final class GatedStorage: RingStorage {
    final class Hold: Sendable {
        private struct State {
            var reached = false
            var released = false
            var held: CheckedContinuation<Void, Never>?
            var watchers: [CheckedContinuation<Void, Never>] = []
        }
        fileprivate let matches: @Sendable (Mutation) -> Bool
        private let state = NIOLockedValueBox(State())

        fileprivate init(_ matches: @escaping @Sendable (Mutation) -> Bool) { self.matches = matches }

        /// Returns once the held write has arrived at the gate.
        func reached() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLockedValue { s -> Bool in
                    if s.reached { return true }
                    s.watchers.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }

        func release() {
            let held = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
                s.released = true
                defer { s.held = nil }
                return s.held
            }
            held?.resume()
        }

        fileprivate func wait() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let (go, watchers) = state.withLockedValue { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                    s.reached = true
                    defer { s.watchers = [] }
                    if s.released { return (true, s.watchers) }
                    s.held = c
                    return (false, s.watchers)
                }
                for w in watchers { w.resume() }
                if go { c.resume() }
            }
        }
    }

    let inner: InMemoryRingStorage
    private let holds = NIOLockedValueBox<[Hold]>([])
    private let log = NIOLockedValueBox<[Mutation]>([])

    /// Every write made through this storage so far, in the order they arrived.
    var writes: [Mutation] { log.withLockedValue { $0 } }

    init(inner: InMemoryRingStorage) { self.inner = inner }

    /// The next write for which `matches` is true waits until `release()`.
    func holdNextWrite(_ matches: @escaping @Sendable (Mutation) -> Bool) -> Hold {
        let h = Hold(matches)
        holds.withLockedValue { $0.append(h) }
        return h
    }

    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        let hold = holds.withLockedValue { hs -> Hold? in
            guard let i = hs.firstIndex(where: { $0.matches(mutation) }) else { return nil }
            return hs.remove(at: i)
        }
        log.withLockedValue { $0.append(mutation) }
        if let hold { await hold.wait() }
        return try await inner.write(mutation, consistency: consistency)
    }

    func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
        try await inner.read(query, consistency: consistency)
    }
}

/// Chat servers over one in-memory ring, each behind its own `GatedStorage`, with users ann and
/// bob: the setup of the tests that hold one server's writes to land them late.
struct GatedChatFixture {
    let clock = ManualClock()
    let memory: InMemoryRingStorage
    /// Ungated: the tests' own reads and setup writes.
    let setup: ChatCatalog
    let delivery = RecordingDelivery()

    init() async throws {
        memory = InMemoryRingStorage(clock: clock)
        setup = ChatCatalog(storage: memory, clock: clock)
        for u in ["ann", "bob"] { try await setup.putUser(UserRecord(userId: u, passwordHash: "x", createdAt: 1)) }
    }

    func gate() -> GatedStorage { GatedStorage(inner: memory) }

    /// A chat server writing through `storage`; `epochStep` is how far past the header's epoch it
    /// draws when it opens a chat.
    func server(_ id: String, _ storage: GatedStorage, epochStep: Int64 = 0) -> ChatService {
        ChatService(
            store: ChatCatalog(storage: storage, clock: clock), delivery: delivery,
            limiter: RateLimiter(ratePerSecond: 1e9, burst: 1e9, clock: clock), clock: clock, serverId: id,
            epochStep: { epochStep })
    }

    /// A group of ann and bob created ungated (no server has opened it yet).
    func group() async throws -> Int64 {
        let plain = ChatService(
            store: setup, delivery: RecordingDelivery(),
            limiter: RateLimiter(ratePerSecond: 1e9, burst: 1e9, clock: clock), clock: clock)
        return try await plain.createGroup("ann", title: "g", members: ["bob"]).chatId
    }
}

extension PeerLink {
    /// A link to peer "p" at an address nothing listens on, never started (`run`): what it queues
    /// stays queued, and what it asks is never answered.
    static func unconnected(maxFrames: Int) -> PeerLink {
        PeerLink(
            peerId: "p", address: "http://127.0.0.1:1", serverId: "me",
            handshake: PeerHandshake(secret: Array("0123456789abcdef".utf8)),
            clock: ManualClock(), maxFrames: maxFrames, logger: Logger(label: "test"))
    }
}
