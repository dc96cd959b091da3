import ConfabEngine
import Foundation
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
