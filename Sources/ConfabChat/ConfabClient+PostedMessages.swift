import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation

extension ConfabClient {
    /// Posts one message to `confab.messages` and returns it as stored: the table's one writer.
    ///
    /// `timestamp` (µs since the epoch; now by default) orders the message in its chat;
    /// `messageId` (a new UUID by default) makes it unique, so posting the same message again — a
    /// retry — overwrites it instead of duplicating it. Durable per `consistency` when it returns.
    @discardableResult
    public func post(
        chatId: Int64, sender: String, text: String, messageId: String? = nil, timestamp: Int64? = nil,
        consistency: ConsistencyLevel = .quorum
    ) async throws -> PostedMessage {
        let now = configuration.clock.nowMicros()
        let message = PostedMessage(
            chatId: chatId, timestamp: timestamp ?? now,
            messageId: messageId ?? UUID().uuidString.lowercased(), sender: sender, text: text)
        let mutation = PostedMessages.mutation(
            chatId: chatId, timestamp: message.timestamp, messageId: message.messageId,
            sender: sender, body: text, writeTime: now)
        try await write(mutation, consistency: consistency)
        return message
    }

    /// The newest `limit` messages of a chat, newest first, with `after < timestamp < before`
    /// (µs since the epoch; either bound optional). Page back by passing the oldest returned
    /// timestamp as the next `before`.
    public func history(
        chatId: Int64, limit: Int = 50, before: Int64? = nil, after: Int64? = nil,
        consistency: ConsistencyLevel = .quorum
    ) async throws -> [PostedMessage] {
        guard limit > 0 else { throw ConfabClientError(.invalidArgument, "limit must be at least 1 (got \(limit))") }
        var query = PostedMessages.latest(chatId: chatId, before: before, limit: limit)
        if let after {
            query.lower = ClusteringBound(ClusteringKey([.int64(after)]), inclusive: false)
        }
        let rows = try await read(query, consistency: consistency)
        let now = configuration.clock.nowSeconds()
        return rows.rows.compactMap { PostedMessage(chatId: chatId, row: $0, header: rows.header, nowSeconds: now) }
    }
}
