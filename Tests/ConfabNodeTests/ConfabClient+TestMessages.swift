import ConfabClient
import ConfabEngine
import ConfabRing
import Foundation

/// `post` and `history` over the fixture table, for the node tests: the node knows no chat, so its
/// tests write `TestMessages` rows (the same layout the `confab` binary serves as
/// `confab.messages`, so these work against node processes too).
extension ConfabClient {
    @discardableResult
    func post(
        chatId: Int64, sender: String, text: String, messageId: String? = nil, timestamp: Int64? = nil,
        consistency: ConsistencyLevel = .quorum
    ) async throws -> TestMessages.Message {
        let now = configuration.clock.nowMicros()
        let message = TestMessages.Message(
            timestamp: timestamp ?? now, messageId: messageId ?? UUID().uuidString.lowercased(), sender: sender,
            body: text)
        try await write(
            TestMessages.mutation(
                chatId: chatId, timestamp: message.timestamp, messageId: message.messageId, sender: sender,
                body: text, writeTime: now),
            consistency: consistency)
        return message
    }

    /// The newest `limit` messages with `after < timestamp < before`, newest first.
    func history(
        chatId: Int64, limit: Int = 50, before: Int64? = nil, after: Int64? = nil,
        consistency: ConsistencyLevel = .quorum
    ) async throws -> [TestMessages.Message] {
        var query = TestMessages.latest(chatId: chatId, before: before, limit: limit)
        if let after { query.lower = ClusteringBound(ClusteringKey([.int64(after)]), inclusive: false) }
        let result = try await read(query, consistency: consistency)
        let now = configuration.clock.nowSeconds()
        return result.rows.compactMap { row in
            var fragment = row.fragment
            if let d = result.header.deletion(covering: row.clustering) { fragment.applyDeletion(d) }
            if let d = fragment.deletion { fragment.applyDeletion(d) }
            guard fragment.isLive(now: now) else { return nil }
            let cells = fragment.cells.filter { $0.isLive(now: now) }
            return TestMessages.message(from: ResultRow(clustering: row.clustering, cells: cells))
        }
    }
}
