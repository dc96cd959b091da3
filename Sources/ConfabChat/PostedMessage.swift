import ConfabEngine
import ConfabWire

/// One row of `confab.messages` (`PostedMessages`) as `post` and `history` return it.
public struct PostedMessage: Hashable, Sendable, Codable {
    public var chatId: Int64
    /// Microseconds since the Unix epoch, chosen by the poster; messages are ordered by
    /// (timestamp, messageId).
    public var timestamp: Int64
    public var messageId: String
    public var sender: String
    public var text: String

    public init(chatId: Int64, timestamp: Int64, messageId: String, sender: String, text: String) {
        self.chatId = chatId
        self.timestamp = timestamp
        self.messageId = messageId
        self.sender = sender
        self.text = text
    }

    /// The message in a row of `confab.messages`, if the row is live at `nowSeconds` and well formed.
    init?(chatId: Int64, row: Mutation.Row, header: PartitionHeader, nowSeconds: Int64) {
        var fragment = row.fragment
        if let d = header.deletion(covering: row.clustering) { fragment.applyDeletion(d) }
        if let d = fragment.deletion { fragment.applyDeletion(d) }
        guard fragment.isLive(now: nowSeconds),
            let parts = ClusteringKey.components(of: row.clustering), parts.count == 2,
            case .int64(let ts) = parts[0], case .bytes(let id) = parts[1]
        else { return nil }
        func text(_ column: UInt32) -> String {
            guard let cell = fragment.cells.first(where: { $0.column == column }), cell.isLive(now: nowSeconds),
                let value = cell.value
            else { return "" }
            return String(decoding: value, as: UTF8.self)
        }
        self.init(
            chatId: chatId, timestamp: ts, messageId: String(decoding: id, as: UTF8.self),
            sender: text(PostedMessages.senderColumn), text: text(PostedMessages.bodyColumn))
    }
}
