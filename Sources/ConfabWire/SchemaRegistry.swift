import ConfabEngine

/// A table as clients name it (CQL's keyspace.table) and as the engine stores it (a table id).
public struct TableSchema: Hashable, Sendable {
    public var keyspace: String
    public var name: String
    public var id: TableID
    /// The partition key column (one, serialized as the engine's partition key bytes).
    public var partitionKey: String
    /// Clustering columns in clustering order (the engine's `ClusteringKey` components).
    public var clusteringColumns: [String]
    /// Regular columns by engine column id.
    public var columns: [UInt32: String]

    public init(keyspace: String, name: String, id: TableID, partitionKey: String, clusteringColumns: [String],
                columns: [UInt32: String]) {
        self.keyspace = keyspace
        self.name = name
        self.id = id
        self.partitionKey = partitionKey
        self.clusteringColumns = clusteringColumns
        self.columns = columns
    }

    /// "keyspace.table"
    public var qualifiedName: String { "\(keyspace).\(name)" }
}

/// The tables a node serves. Fixed in code for now (no DDL): keyspace `confab`, table `messages`
/// → `ChatMessages.table`. Requests name tables; the registry maps names to engine table ids and
/// back, and the node refuses names it does not know with `notFound`.
public struct SchemaRegistry: Sendable {
    public private(set) var tables: [TableSchema]

    public init(tables: [TableSchema]) { self.tables = tables }

    public static let chatKeyspace = "confab"
    public static let messagesTable = "messages"

    /// `confab.messages`: `PRIMARY KEY ((chat_id), ts, message_id)` with `sender` and `body`.
    public static let messages = TableSchema(
        keyspace: chatKeyspace, name: messagesTable, id: ChatMessages.table, partitionKey: "chat_id",
        clusteringColumns: ["ts", "message_id"],
        columns: [ChatMessages.senderColumn: "sender", ChatMessages.bodyColumn: "body"])

    public static let standard = SchemaRegistry(tables: [messages])

    public func table(keyspace: String, name: String) -> TableSchema? {
        tables.first { $0.keyspace == keyspace && $0.name == name }
    }

    public func table(id: TableID) -> TableSchema? { tables.first { $0.id == id } }

    /// The table named, or a `notFound` error listing the tables that exist.
    public func resolve(keyspace: String, table name: String) throws(WireError) -> TableSchema {
        guard let t = table(keyspace: keyspace, name: name) else {
            let known = tables.map(\.qualifiedName).joined(separator: ", ")
            throw WireError(.notFound, "no table \(keyspace).\(name) (this node serves: \(known))")
        }
        return t
    }

    /// The table with engine id `id`, or `notFound`.
    public func resolve(id: TableID) throws(WireError) -> TableSchema {
        guard let t = table(id: id) else { throw WireError(.notFound, "no table with id \(id)") }
        return t
    }
}
