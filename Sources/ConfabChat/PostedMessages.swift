import ConfabEngine
import ConfabWire

/// `confab.messages`, the ring-level messages table that `confab post` writes and `confab history`
/// reads (the chat servers keep their own log, `chat.messages`: `ChatLog`). Partitioned by chatId
/// (a bigint, 8 bytes big-endian as Cassandra serializes it), clustered by (timestamp, messageId),
/// with sender and body columns. Its one writer is `ConfabClient.post`.
public enum PostedMessages {
    public static let table: TableID = 1
    public static let senderColumn: UInt32 = 0
    public static let bodyColumn: UInt32 = 1
    /// Named in the schema for CQL clients; nothing writes it yet.
    public static let clientIdColumn: UInt32 = 2

    /// `confab.messages`: `PRIMARY KEY ((chat_id), ts, message_id)` with `sender` and `body`.
    public static let schema = TableSchema(
        keyspace: "confab", name: "messages", id: table, partitionKey: "chat_id",
        clusteringColumns: ["ts", "message_id"],
        columns: [senderColumn: "sender", bodyColumn: "body", clientIdColumn: "client_id"])

    public static func partitionKey(chatId: Int64) -> [UInt8] {
        let u = UInt64(bitPattern: chatId)
        return (0..<8).map { UInt8(truncatingIfNeeded: u >> (56 - 8 * $0)) }
    }

    public static func clustering(timestamp: Int64, messageId: String) -> [UInt8] {
        ClusteringKey([.int64(timestamp), .bytes(Array(messageId.utf8))]).bytes
    }

    /// One message as a mutation; `writeTime` is the cell timestamp in microseconds.
    public static func mutation(
        chatId: Int64, timestamp: Int64, messageId: String, sender: String, body: String,
        writeTime: Int64
    ) -> Mutation {
        let row = RowFragment(
            liveness: LivenessInfo(timestamp: writeTime),
            cells: [
                Cell(column: senderColumn, timestamp: writeTime, value: Array(sender.utf8)),
                Cell(column: bodyColumn, timestamp: writeTime, value: Array(body.utf8)),
            ])
        return Mutation(
            table: table, partitionKey: partitionKey(chatId: chatId),
            rows: [.init(clustering: clustering(timestamp: timestamp, messageId: messageId), fragment: row)])
    }

    /// The newest `limit` messages with timestamp < `before` (all when nil), newest first.
    public static func latest(chatId: Int64, before: Int64? = nil, limit: Int = 50) -> SliceQuery {
        SliceQuery(
            table: table, partitionKey: partitionKey(chatId: chatId), lower: nil,
            upper: before.map { ClusteringBound(ClusteringKey([.int64($0)]), inclusive: false) },
            reversed: true, limit: limit)
    }

    /// A decoded message row.
    public struct Message: Sendable, Hashable {
        public var timestamp: Int64
        public var messageId: String
        public var sender: String
        public var body: String
    }

    public static func message(from row: ResultRow) -> Message? {
        guard let comps = ClusteringKey.components(of: row.clustering), comps.count == 2,
            case .int64(let ts) = comps[0], case .bytes(let id) = comps[1]
        else { return nil }
        return Message(
            timestamp: ts, messageId: String(decoding: id, as: UTF8.self),
            sender: String(decoding: row.value(senderColumn) ?? [], as: UTF8.self),
            body: String(decoding: row.value(bodyColumn) ?? [], as: UTF8.self))
    }
}
