import ConfabEngine

/// Accounts: registration, login and token checks. A user's id is their handle, lowercased.
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
    /// registrations gets `handle_taken` unless both read back within the same instant — a window
    /// docs/chat_data.md describes.
    func register(handle: String, password: String) async throws -> Session {
        let userId = try Self.userId(forHandle: handle)
        try Self.checkPassword(password)
        if try await store.user(userId) != nil {
            throw ChatError(.handleTaken, "the handle \"\(userId)\" is taken; choose another")
        }
        let hash = try await hasher.hash(password)
        try await store.putUser(UserRecord(userId: userId, passwordHash: hash, createdAt: clock.nowMicros()))
        guard let stored = try await store.user(userId), stored.passwordHash == hash else {
            throw ChatError(
                .handleTaken, "the handle \"\(userId)\" was registered by someone else a moment ago; choose another")
        }
        let (token, expiresAt) = signer.issue(userId: userId)
        return Session(userId: userId, token: token, expiresAt: expiresAt)
    }

    func login(handle: String, password: String) async throws -> Session {
        let failure = ChatError(.badCredentials, "unknown handle or wrong password")
        guard let userId = try? Self.userId(forHandle: handle), let user = try await store.user(userId) else {
            throw failure
        }
        guard try await hasher.verify(password, against: user.passwordHash) else { throw failure }
        let (token, expiresAt) = signer.issue(userId: userId)
        return Session(userId: userId, token: token, expiresAt: expiresAt)
    }

    /// The user a bearer token names (no storage access: tokens are self-contained).
    func authenticate(_ token: String?) throws(ChatError) -> String {
        guard let token, !token.isEmpty else {
            throw ChatError(
                .badToken, "no token: send Authorization: Bearer <token> (or ?token= on /ws); log in to get one")
        }
        return try signer.verify(token)
    }

    static func checkPassword(_ password: String) throws(ChatError) {
        guard (8...256).contains(password.count) else {
            throw ChatError(.badPassword, "a password is 8 to 256 characters (got \(password.count))")
        }
    }
}
