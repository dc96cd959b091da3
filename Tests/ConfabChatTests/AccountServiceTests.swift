import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

@Suite struct AccountServiceTests {
    @Test func registerLoginAndTheirErrors() async throws {
        let f = ServiceFixture()
        let s = try await f.accounts.register(handle: "Alice_1", password: "correct horse")
        #expect(s.userId == "alice_1")
        #expect(try await f.accounts.authenticate(s.token) == "alice_1")
        #expect(
            await chatErrorCode { try await f.accounts.register(handle: "ALICE_1", password: "another pass") }
                == .handleTaken)
        #expect(
            await chatErrorCode { try await f.accounts.register(handle: "al", password: "long enough") } == .badHandle)
        #expect(
            await chatErrorCode { try await f.accounts.register(handle: "bob-smith", password: "long enough") }
                == .badHandle)
        #expect(await chatErrorCode { try await f.accounts.register(handle: "bob", password: "short") } == .badPassword)
        #expect(
            await chatErrorCode { try await f.accounts.login(handle: "alice_1", password: "wrong horse") }
                == .badCredentials)
        #expect(
            await chatErrorCode { try await f.accounts.login(handle: "nobody", password: "whatever1") }
                == .badCredentials)
        let again = try await f.accounts.login(handle: "ALICE_1", password: "correct horse")
        #expect(again.userId == "alice_1")
    }

    @Test func passwordsAreStoredAsPBKDF2Hashes() async throws {
        let f = ServiceFixture()
        try await f.users(["carol"])
        let stored = try #require(try await ChatCatalog(storage: f.storage, clock: f.clock).user("carol"))
        #expect(stored.passwordHash.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(!stored.passwordHash.contains("password-carol"))
        let hasher = PasswordHasher(rounds: 1000)
        #expect(try await hasher.verify("password-carol", against: stored.passwordHash))
        #expect(try await !hasher.verify("password-caro", against: stored.passwordHash))
        #expect(try await !hasher.verify("password-carol", against: "pbkdf2-sha256$x$$"))
    }

    @Test func tokensExpireAndMustBeSignedByTheSharedSecret() async throws {
        let clock = ManualClock()
        let signer = TokenSigner(secret: Array("secret-one-0123456789".utf8), clock: clock, lifetimeSeconds: 3600)
        let (token, expiresAt) = signer.issue(userId: "dave", registeredAt: 1, generation: 0)
        #expect(expiresAt == clock.nowSeconds() + 3600)
        #expect(try signer.verify(token).sub == "dave")

        let other = TokenSigner(secret: Array("secret-two-0123456789".utf8), clock: clock)
        #expect(throws: ChatError.self) { try other.verify(token) }
        do { _ = try other.verify(token) } catch { #expect(error.code == .badToken) }

        // Tampered payload: sub changed, signature kept.
        let parts = token.split(separator: ".")
        let forged = TokenSigner.base64url(Array(#"{"exp":9999999999,"iat":0,"sub":"admin"}"#.utf8)) + "." + parts[1]
        do {
            _ = try signer.verify(forged)
            Issue.record("a token with a tampered payload was accepted")
        } catch { #expect(error.code == .badToken) }
        do {
            _ = try signer.verify("not a token")
            Issue.record("garbage was accepted as a token")
        } catch { #expect(error.code == .badToken) }

        clock.advance(seconds: 3599)
        #expect(try signer.verify(token).sub == "dave")
        clock.advance(seconds: 1)
        do {
            _ = try signer.verify(token)
            Issue.record("an expired token was accepted")
        } catch {
            #expect(error.code == .tokenExpired)
        }
    }

    /// Issue 12: the loser of a registration race got a token for the winner's account. Server B
    /// registers "zed" and reads its own row back; server A's registration of "zed", stamped
    /// earlier, lands after that and wins every replica. B's token must open nothing.
    @Test func theLoserOfARegistrationRaceGetsNoAccessToTheWinnersAccount() async throws {
        let f = ServiceFixture()
        let loser = try await f.accounts.register(handle: "zed", password: "password-of-b")
        #expect(try await f.accounts.authenticate(loser.token) == "zed")
        // A's registration: created a moment before B's, its write arriving after B's read-back.
        let store = ChatCatalog(storage: f.storage, clock: f.clock)
        let bRow = try #require(try await store.user("zed"))
        let aHash = try await PasswordHasher(rounds: 1000).hash("password-of-a")
        try await store.putUser(UserRecord(userId: "zed", passwordHash: aHash, createdAt: bRow.createdAt - 1_000))
        let winner = try await f.accounts.login(handle: "zed", password: "password-of-a")
        f.clock.advance(seconds: 1)  // past the 1 s credentials cache
        #expect(try await f.accounts.authenticate(winner.token) == "zed")
        #expect(await chatErrorCode { try await f.accounts.authenticate(loser.token) } == .badToken)
        #expect(
            await chatErrorCode { try await f.accounts.login(handle: "zed", password: "password-of-b") }
                == .badCredentials)
    }

    /// Sign-out everywhere ends every older token, on this server at once and on another server
    /// within the credentials cache's second; the device that asked gets a fresh token.
    @Test func signOutEverywhereEndsEveryOlderTokenOnEveryServer() async throws {
        let f = ServiceFixture()
        let first = try await f.accounts.register(handle: "yan", password: "password-yan")
        let second = try await f.accounts.login(handle: "yan", password: "password-yan")
        // Another chat server over the same ring, with its own cache.
        let other = AccountService(
            store: ChatCatalog(storage: f.storage, clock: f.clock), hasher: PasswordHasher(rounds: 1000),
            signer: TokenSigner(secret: Array("test-secret-0123456789".utf8), clock: f.clock), clock: f.clock)
        #expect(try await other.authenticate(first.token) == "yan")
        let fresh = try await f.accounts.signOutEverywhere(userId: "yan")
        for old in [first, second] {
            #expect(await chatErrorCode { try await f.accounts.authenticate(old.token) } == .badToken)
        }
        #expect(try await f.accounts.authenticate(fresh.token) == "yan")
        f.clock.advance(seconds: 1)
        #expect(await chatErrorCode { try await other.authenticate(first.token) } == .badToken)
        #expect(try await other.authenticate(fresh.token) == "yan")
        // Logging in again works and yields a token of the new generation.
        let again = try await other.login(handle: "yan", password: "password-yan")
        #expect(try await f.accounts.authenticate(again.token) == "yan")
    }

    /// A password change needs the current password, ends older tokens and the old password.
    @Test func aPasswordChangeEndsOlderTokensAndTheOldPassword() async throws {
        let f = ServiceFixture()
        let before = try await f.accounts.register(handle: "xia", password: "password-old")
        #expect(
            await chatErrorCode {
                try await f.accounts.changePassword(userId: "xia", from: "not-the-password", to: "password-new")
            } == .badCredentials)
        #expect(try await f.accounts.authenticate(before.token) == "xia")
        let after = try await f.accounts.changePassword(userId: "xia", from: "password-old", to: "password-new")
        #expect(await chatErrorCode { try await f.accounts.authenticate(before.token) } == .badToken)
        #expect(try await f.accounts.authenticate(after.token) == "xia")
        #expect(
            await chatErrorCode { try await f.accounts.login(handle: "xia", password: "password-old") }
                == .badCredentials)
        let login = try await f.accounts.login(handle: "xia", password: "password-new")
        #expect(try await f.accounts.authenticate(login.token) == "xia")
    }
}

/// Holds the first write to the users table until released: the interleaving in which an earlier
/// sign-up's row lands after a later one has read its own back.
private final class HoldingFirstUserWrite: RingStorage {
    let inner: InMemoryRingStorage
    private let state = NIOLockedValueBox<(armed: Bool, held: CheckedContinuation<Void, Never>?)>((true, nil))
    let (holding, holdingSink) = AsyncStream<Void>.makeStream()

    init(inner: InMemoryRingStorage) { self.inner = inner }

    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        let hold = state.withLockedValue { s -> Bool in
            defer { if mutation.table == ChatTables.users { s.armed = false } }
            return s.armed && mutation.table == ChatTables.users
        }
        if hold {
            await withCheckedContinuation { c in
                state.withLockedValue { $0.held = c }
                holdingSink.yield()
            }
        }
        return try await inner.write(mutation, consistency: consistency)
    }

    func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
        try await inner.read(query, consistency: consistency)
    }

    func release() {
        state.withLockedValue { s in
            defer { s.held = nil }
            return s.held
        }?.resume()
    }
}

extension AccountServiceTests {
    /// Issue 12: the loser of a sign-up race gets `handle_taken`, not a token. Two sign-ups of one
    /// handle on one server, the earlier one's row landing only after the later one has written
    /// and read back its own: before, both got a token (the later one's refused a second later);
    /// now sign-ups of a handle take turns, and the later one finds the earlier's row. (Across
    /// servers, sign-ups go to the handle's owner, where they take turns the same way:
    /// `ChatServerIntegrationTests.racingSignUpsOnTwoServersGetOneAccountAndOneHandleTaken`.)
    @Test func aSignUpRacingAnEarlierOneOfTheSameHandleGetsHandleTaken() async throws {
        let clock = ManualClock()
        let memory = InMemoryRingStorage(clock: clock)
        let storage = HoldingFirstUserWrite(inner: memory)
        let accounts = AccountService(
            store: ChatCatalog(storage: storage, clock: clock), hasher: PasswordHasher(rounds: 1000),
            signer: TokenSigner(secret: Array("test-secret-0123456789".utf8), clock: clock), clock: clock)
        let first = Task { try await accounts.register(handle: "neo", password: "password-first") }
        for await _ in storage.holding { break }  // the first's row is created and its write held
        clock.advance(micros: 10)
        let secondDone = NIOLockedValueBox(false)
        let second = Task {
            defer { secondDone.withLockedValue { $0 = true } }
            return try await accounts.register(handle: "neo", password: "password-second")
        }
        // Release the first once the second has either finished (the old interleaving) or is
        // waiting for its turn (now).
        while !secondDone.withLockedValue({ $0 }) && accounts.registrations.waiting("neo") == 0 {
            await Task.yield()
        }
        storage.release()
        let outcomes = [await first.result, await second.result]
        let sessions = outcomes.compactMap { try? $0.get() }
        #expect(sessions.count == 1, "both sign-ups got a token: \(sessions.map(\.userId))")
        let refused = outcomes.compactMap { r -> ChatError? in
            if case .failure(let e) = r { return e as? ChatError }
            return nil
        }
        #expect(refused.map(\.code) == [.handleTaken])
        #expect(try await accounts.authenticate(sessions.first?.token) == "neo")
    }
}
