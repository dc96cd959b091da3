import ConfabEngine
import Foundation
import Testing

@testable import ConfabChat

@Suite struct AccountServiceTests {
    @Test func registerLoginAndTheirErrors() async throws {
        let f = ServiceFixture()
        let s = try await f.accounts.register(handle: "Alice_1", password: "correct horse")
        #expect(s.userId == "alice_1")
        #expect(try f.accounts.authenticate(s.token) == "alice_1")
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
        let (token, expiresAt) = signer.issue(userId: "dave")
        #expect(expiresAt == clock.nowSeconds() + 3600)
        #expect(try signer.verify(token) == "dave")

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
        #expect(try signer.verify(token) == "dave")
        clock.advance(seconds: 1)
        do {
            _ = try signer.verify(token)
            Issue.record("an expired token was accepted")
        } catch {
            #expect(error.code == .tokenExpired)
        }
    }
}
