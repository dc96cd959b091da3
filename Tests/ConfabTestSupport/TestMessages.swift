import ConfabEngine
import ConfabWire

/// The test suite's fixture table, laid out like the chat layer's `confab.messages` (table 1, which the
/// `confab` binary serves, so process tests can use it too): partitioned by an Int64 (8 bytes
/// big-endian), clustered by (timestamp, messageId), with sender and body columns. The engine,
/// ring and node tests use it so that nothing below the chat layer needs to know chat.
public enum TestMessages {
    public static let table: TableID = 1
    public static let senderColumn: UInt32 = 0
    public static let bodyColumn: UInt32 = 1

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
        /// The body, named as the chat layer's `PostedMessage` names it.
        public var text: String { body }

        public init(timestamp: Int64, messageId: String, sender: String, body: String) {
            self.timestamp = timestamp
            self.messageId = messageId
            self.sender = sender
            self.body = body
        }
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

/// The registry test nodes and clients serve and name: `TestMessages` as `confab.messages`, the
/// name and id the `confab` binary gives the same layout, so in-process and process tests agree;
/// and a second keyspace, `kv`, with one table without clustering columns (`kv.rows`, id 2), for
/// tests of per-keyspace replication.
public enum TestSchema {
    public static let messages = TableSchema(
        keyspace: "confab", name: "messages", id: TestMessages.table, partitionKey: "chat_id",
        clusteringColumns: ["ts", "message_id"],
        columns: [TestMessages.senderColumn: "sender", TestMessages.bodyColumn: "body", 2: "client_id"])
    public static let rows = TableSchema(
        keyspace: "kv", name: "rows", id: 2, partitionKey: "key", clusteringColumns: [], columns: [0: "value"])
    public static let registry = SchemaRegistry(tables: [messages, rows])
}
