/// Blocks (issue 12): nobody can be added to a group, or be sent a new direct chat, by someone
/// they have blocked. A user leaves a group with `removeMember` (themselves), and blocks its owner
/// so that they are not added again.
extension ChatService {
    /// `userId` blocks `other` (idempotent).
    func block(_ userId: String, _ other: String) async throws {
        let other = other.lowercased()
        guard other != userId else { throw ChatError(.badRequest, "you cannot block yourself") }
        try await requireUsersExist([other])
        try await store.putBlock(userId: userId, blocked: other)
    }

    func unblock(_ userId: String, _ other: String) async throws {
        try await store.removeBlock(userId: userId, blocked: other.lowercased())
    }

    func blocks(of userId: String) async throws -> [String] {
        try await store.blocks(of: userId)
    }

    /// Refuses with `blocked` when any of `users` has blocked `adder` (one read each, in parallel).
    func requireNotBlocked(by users: [String], adder: String) async throws {
        let refusing = try await withThrowingTaskGroup(of: String?.self) { group in
            for user in users {
                group.addTask { try await self.store.hasBlocked(user, adder) ? user : nil }
            }
            var out: [String] = []
            for try await u in group { if let u { out.append(u) } }
            return out.sorted()
        }
        guard refusing.isEmpty else {
            throw ChatError(
                .blocked,
                "\(refusing.prefix(5).joined(separator: ", ")) do\(refusing.count == 1 ? "es" : "") not accept chats from you"
            )
        }
    }
}
