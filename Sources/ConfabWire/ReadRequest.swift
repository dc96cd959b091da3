import ConfabEngine
import ConfabRing

/// A read of one partition's rows in a clustering range: CQL's
/// `SELECT * FROM ks.table WHERE pk = ? AND ck > ? AND ck < ? ORDER BY ck [DESC] LIMIT n`,
/// plus the consistency level and, for replica reads, "digest only".
public struct ReadRequest: Hashable, Sendable {
    public var keyspace: String
    public var table: String
    public var partitionKey: [UInt8]
    public var lower: ClusteringBound?
    public var upper: ClusteringBound?
    /// Descending clustering order (newest first for chat messages).
    public var reversed: Bool
    public var limit: UInt32
    /// Resume after this clustering key (a previous response's cursor).
    public var cursor: [UInt8]?
    public var consistency: ConsistencyLevel
    /// Answer with a digest of the rows instead of the rows.
    public var digestOnly: Bool

    public init(
        keyspace: String, table: String, partitionKey: [UInt8], lower: ClusteringBound? = nil,
        upper: ClusteringBound? = nil, reversed: Bool = false, limit: UInt32 = 100, cursor: [UInt8]? = nil,
        consistency: ConsistencyLevel, digestOnly: Bool = false
    ) {
        self.keyspace = keyspace
        self.table = table
        self.partitionKey = partitionKey
        self.lower = lower
        self.upper = upper
        self.reversed = reversed
        self.limit = limit
        self.cursor = cursor
        self.consistency = consistency
        self.digestOnly = digestOnly
    }

    /// The request for an engine query on a table of `schema`.
    public init(_ query: SliceQuery, schema: TableSchema, consistency: ConsistencyLevel, digestOnly: Bool = false) {
        self.init(
            keyspace: schema.keyspace, table: schema.name, partitionKey: query.partitionKey, lower: query.lower,
            upper: query.upper, reversed: query.reversed, limit: UInt32(clamping: query.limit),
            cursor: query.cursor, consistency: consistency, digestOnly: digestOnly)
    }

    /// The engine query once `keyspace.table` is resolved to a table id.
    public func sliceQuery(table id: TableID) -> SliceQuery {
        SliceQuery(
            table: id, partitionKey: partitionKey, lower: lower, upper: upper, reversed: reversed,
            limit: Int(limit), cursor: cursor)
    }
}
