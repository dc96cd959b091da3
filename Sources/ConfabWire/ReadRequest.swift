import ConfabEngine
import ConfabRing

/// A read of one partition's rows in a clustering range: CQL's
/// `SELECT * FROM ks.table WHERE pk = ? AND ck > ? AND ck < ? ORDER BY ck [DESC] LIMIT n`,
/// plus the consistency level and, for replica reads, "digest only".
package struct ReadRequest: Hashable, Sendable {
    package var keyspace: String
    package var table: String
    package var partitionKey: [UInt8]
    package var lower: ClusteringBound?
    package var upper: ClusteringBound?
    /// Descending clustering order (newest first for chat messages).
    package var reversed: Bool
    package var limit: UInt32
    /// Resume after this clustering key (a previous response's cursor).
    package var cursor: [UInt8]?
    /// `SliceQuery.byteLimit`: the page ends after the row that reaches this many row bytes.
    package var byteLimit: UInt32?
    package var consistency: ConsistencyLevel
    /// Answer with a digest of the rows instead of the rows.
    package var digestOnly: Bool

    package init(
        keyspace: String, table: String, partitionKey: [UInt8], lower: ClusteringBound? = nil,
        upper: ClusteringBound? = nil, reversed: Bool = false, limit: UInt32 = 100, cursor: [UInt8]? = nil,
        byteLimit: UInt32? = nil, consistency: ConsistencyLevel, digestOnly: Bool = false
    ) {
        self.keyspace = keyspace
        self.table = table
        self.partitionKey = partitionKey
        self.lower = lower
        self.upper = upper
        self.reversed = reversed
        self.limit = limit
        self.cursor = cursor
        self.byteLimit = byteLimit
        self.consistency = consistency
        self.digestOnly = digestOnly
    }

    /// The request for an engine query on a table of `schema`.
    package init(_ query: SliceQuery, schema: TableSchema, consistency: ConsistencyLevel, digestOnly: Bool = false) {
        self.init(
            keyspace: schema.keyspace, table: schema.name, partitionKey: query.partitionKey, lower: query.lower,
            upper: query.upper, reversed: query.reversed, limit: UInt32(clamping: query.limit),
            cursor: query.cursor, byteLimit: query.byteLimit.map { UInt32(clamping: max($0, 1)) },
            consistency: consistency, digestOnly: digestOnly)
    }

    /// The engine query once `keyspace.table` is resolved to a table id.
    package func sliceQuery(table id: TableID) -> SliceQuery {
        SliceQuery(
            table: id, partitionKey: partitionKey, lower: lower, upper: upper, reversed: reversed,
            limit: Int(limit), cursor: cursor, byteLimit: byteLimit.map { Int($0) })
    }
}
