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

    public init(
        keyspace: String, name: String, id: TableID, partitionKey: String, clusteringColumns: [String],
        columns: [UInt32: String]
    ) {
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

/// A keyspace (CQL's `CREATE KEYSPACE ... WITH replication = {'class': 'SimpleStrategy',
/// 'replication_factor': N}`): the replication factor every table in it is stored with. Every node
/// of a ring must use the same factor per keyspace (docs/ring.md § Keyspaces), or coordinators
/// disagree about which nodes hold a key.
public struct KeyspaceSchema: Hashable, Sendable {
    public var name: String
    /// Replicas per key (SimpleStrategy). A ring with fewer normal nodes uses all of them.
    public var replicationFactor: Int

    public init(name: String, replicationFactor: Int = SchemaRegistry.defaultReplicationFactor) {
        self.name = name
        self.replicationFactor = replicationFactor
    }
}

/// The tables a node serves. There is no DDL yet (a CQL front end is next), so whoever embeds the
/// node declares them: the `confab` executable serves the chat layer's tables (`ChatSchema`), tests
/// serve their fixtures. Requests name tables; the registry maps names to engine table ids and
/// back, and the node refuses names it does not know with `notFound`. Nothing here knows chat.
public struct SchemaRegistry: Sendable, Hashable {
    public private(set) var tables: [TableSchema]

    /// Keyspaces with their replication factor. A table whose keyspace is not listed is
    /// replicated `defaultReplicationFactor` times.
    public private(set) var keyspaces: [KeyspaceSchema]

    /// The tables, each keyspace they name at the default replication factor.
    public init(tables: [TableSchema]) {
        self.tables = tables
        var names: [String] = []
        for t in tables where !names.contains(t.keyspace) { names.append(t.keyspace) }
        self.keyspaces = names.map { KeyspaceSchema(name: $0) }
    }

    /// No tables: a node that serves nothing until its embedder declares tables.
    public static let empty = SchemaRegistry(tables: [])

    public init(tables: [TableSchema], keyspaces: [KeyspaceSchema]) {
        self.tables = tables
        self.keyspaces = keyspaces
    }

    /// Cassandra's usual production factor; what a keyspace gets unless configured otherwise.
    public static let defaultReplicationFactor = 3

    /// The replication factor of `keyspace` (the default for a keyspace not listed).
    public func replicationFactor(keyspace: String) -> Int {
        keyspaces.first { $0.name == keyspace }?.replicationFactor ?? Self.defaultReplicationFactor
    }

    /// The keyspaces' factors as `name=rf` pairs sorted by name, comma-separated: what a node
    /// gossips as its SCHEMA state so peers notice a disagreement.
    public var replicationSignature: String {
        keyspaces.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.replicationFactor)" }.joined(separator: ",")
    }

    /// This registry with replication factors set by a node's configuration: `default`, when
    /// given, for every keyspace, then `overrides` per keyspace name (keyspaces not yet listed are
    /// added, so a table's keyspace can be configured before the registry names it).
    public func withReplication(default rf: Int?, overrides: [String: Int]) -> SchemaRegistry {
        var copy = self
        for t in tables where !copy.keyspaces.contains(where: { $0.name == t.keyspace }) {
            copy.keyspaces.append(KeyspaceSchema(name: t.keyspace))
        }
        if let rf { for i in copy.keyspaces.indices { copy.keyspaces[i].replicationFactor = rf } }
        for (name, n) in overrides.sorted(by: { $0.key < $1.key }) {
            if let i = copy.keyspaces.firstIndex(where: { $0.name == name }) {
                copy.keyspaces[i].replicationFactor = n
            } else {
                copy.keyspaces.append(KeyspaceSchema(name: name, replicationFactor: n))
            }
        }
        return copy
    }

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
