import ConfabEngine
import Synchronization

/// Accounts: registration, login, token checks, sign-out everywhere and password changes. A
/// user's id is their handle, lowercased.
struct AccountService: Sendable {
    struct Session: Sendable, Hashable {
        var userId: String
        var token: String
        var expiresAt: Int64
    }

    let store: ChatCatalog
    let hasher: PasswordHasher
    let signer: TokenSigner
    let clock: any ChatClock
    /// Each user's current registration and token generation, as this server last read them.
    let current = CredentialsCache()
    /// Registrations of one handle, one at a time on this server: the second finds the first's
    /// row. Each handle's registrations are sent to the server that owns the handle
    /// (`ChatServer.register`), so two servers racing on a handle is left to ownership changes.
    let registrations = KeyedTurns(maxWaiting: 8)

    /// The user id for a handle, or `bad_handle`.
    static func userId(forHandle handle: String) throws(ChatError) -> String {
        let id = handle.lowercased()
        guard (3...32).contains(id.unicodeScalars.count),
            id.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        else {
            throw ChatError(
                .badHandle, "a handle is 3 to 32 characters of a-z, 0-9 and _ (got \"\(handle.prefix(40))\")")
        }
        return id
    }

    /// Creates an account. Without lightweight transactions two servers could race on one handle:
    /// the user row is written with the inverted creation time as its timestamp (the earliest
    /// registration wins on every replica) and read back at QUORUM, so the later of two racing
    /// registrations gets `handle_taken` when the earlier one's row is already there. When the
    /// earlier one lands after the later one read back its own, both got a token — but a token
    /// names the registration it was issued for (`reg`), and `authenticate` refuses one whose
    /// registration is not the account's: the loser's token opens nothing (docs/chat_data.md
    /// § Accounts). Racing registrations of a handle on one server take turns, and servers send
    /// them to the handle's owner, so the loser gets `handle_taken` except while ownership moves.
    func register(handle: String, password: String) async throws -> Session {
        let userId = try Self.userId(forHandle: handle)
        try Self.checkPassword(password)
        let session = try await registrations.run(userId) { try await registerInTurn(userId, password: password) }
        guard let session else {
            throw ChatError(.rateLimited, "too many sign-ups for \"\(userId)\" at once; retry", retryAfterSeconds: 1)
        }
        return session
    }

    private func registerInTurn(_ userId: String, password: String) async throws -> Session {
        if try await store.user(userId) != nil {
            throw ChatError(.handleTaken, "the handle \"\(userId)\" is taken; choose another")
        }
        let hash = try await hasher.hash(password)
        let record = UserRecord(userId: userId, passwordHash: hash, createdAt: clock.nowMicros())
        try await store.putUser(record)
        guard let stored = try await store.user(userId), stored.passwordHash == hash else {
            throw ChatError(
                .handleTaken, "the handle \"\(userId)\" was registered by someone else a moment ago; choose another")
        }
        return issue(for: UserCredentials(registration: record, passwordHash: hash, generation: 0))
    }

    func login(handle: String, password: String) async throws -> Session {
        let failure = ChatError(.badCredentials, "unknown handle or wrong password")
        guard let userId = try? Self.userId(forHandle: handle), let user = try await store.credentials(userId) else {
            throw failure
        }
        guard try await hasher.verify(password, against: user.passwordHash) else { throw failure }
        current.remember(user, at: clock.nowMicros())
        return issue(for: user)
    }

    /// The user a bearer token names, once its signature, expiry, registration and generation are
    /// checked. The registration and generation come from `current` (a ring read at most once a
    /// second per user on this server), so a sign-out everywhere reaches every server within a
    /// second.
    func authenticate(_ token: String?) async throws -> String {
        guard let token, !token.isEmpty else {
            throw ChatError(
                .badToken, "no token: send Authorization: Bearer <token> (or ?token= on /ws); log in to get one")
        }
        let payload = try signer.verify(token)
        let user = try await credentials(payload.sub)
        guard let user, user.registration.createdAt == payload.reg else {
            throw ChatError(
                .badToken,
                "this token was issued for an account \"\(payload.sub)\" that no longer exists (another registration of the handle won); register again"
            )
        }
        guard user.generation == payload.gen else {
            throw ChatError(
                .badToken, "this token was signed out (sign-out everywhere or a password change); log in again")
        }
        return payload.sub
    }

    /// Ends every token of `userId` issued so far, on every server (within a second). Returns a
    /// fresh session for the device that asked, so it stays signed in.
    func signOutEverywhere(userId: String) async throws -> Session {
        guard var user = try await store.credentials(userId) else {
            throw ChatError(.badToken, "no account \"\(userId)\"; log in again")
        }
        user.generation += 1
        try await store.putCredentials(user)
        current.remember(user, at: clock.nowMicros())
        return issue(for: user)
    }

    /// Changes the password after checking the old one; every older token ends as with
    /// `signOutEverywhere`. Returns a fresh session.
    func changePassword(userId: String, from old: String, to new: String) async throws -> Session {
        try Self.checkPassword(new)
        guard var user = try await store.credentials(userId),
            try await hasher.verify(old, against: user.passwordHash)
        else {
            throw ChatError(.badCredentials, "the current password is wrong")
        }
        user.passwordHash = try await hasher.hash(new)
        user.generation += 1
        try await store.putCredentials(user)
        current.remember(user, at: clock.nowMicros())
        return issue(for: user)
    }

    static func checkPassword(_ password: String) throws(ChatError) {
        guard (8...256).contains(password.count) else {
            throw ChatError(.badPassword, "a password is 8 to 256 characters (got \(password.count))")
        }
    }

    private func issue(for user: UserCredentials) -> Session {
        let (token, expiresAt) = signer.issue(
            userId: user.registration.userId, registeredAt: user.registration.createdAt, generation: user.generation)
        return Session(userId: user.registration.userId, token: token, expiresAt: expiresAt)
    }

    private func credentials(_ userId: String) async throws -> UserCredentials? {
        let now = clock.nowMicros()
        if let known = current.lookup(userId, at: now) { return known }
        let user = try await store.credentials(userId)
        if let user { current.remember(user, at: now) }
        return user
    }
}

/// Users' current credentials as this server last read them, kept for `ttlMicros` (1 s): a token
/// check costs a ring read at most once a second per user, and a change made on another server is
/// seen here within that second.
final class CredentialsCache: Sendable {
    private let entries = Mutex<[String: (credentials: UserCredentials, readAt: Int64)]>([:])
    let ttlMicros: Int64

    init(ttlMicros: Int64 = 1_000_000) { self.ttlMicros = ttlMicros }

    func lookup(_ userId: String, at now: Int64) -> UserCredentials? {
        entries.withLock { e in
            guard let entry = e[userId] else { return nil }
            guard now - entry.readAt < ttlMicros else {
                e[userId] = nil
                return nil
            }
            return entry.credentials
        }
    }

    func remember(_ credentials: UserCredentials, at now: Int64) {
        entries.withLock { e in
            // Bounded: a server sees many users; an overfull cache starts over (entries are 1 s).
            if e.count >= 100_000 { e.removeAll(keepingCapacity: true) }
            e[credentials.registration.userId] = (credentials, now)
        }
    }
}
