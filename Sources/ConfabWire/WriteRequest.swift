import ConfabEngine
import ConfabRing

/// A write of one partition (CQL's INSERT/UPDATE/DELETE of rows sharing a partition key), applied
/// atomically on each replica. Cells carry their own timestamps, so sending the same request twice
/// (a retry) leaves the same data: writes are idempotent.
public struct WriteRequest: Hashable, Sendable {
    public var keyspace: String
    public var table: String
    /// Its `table` id must be the id the registry gives `keyspace.table`.
    public var mutation: Mutation
    public var consistency: ConsistencyLevel

    public init(keyspace: String, table: String, mutation: Mutation, consistency: ConsistencyLevel) {
        self.keyspace = keyspace
        self.table = table
        self.mutation = mutation
        self.consistency = consistency
    }
}

/// The answer to a `WriteRequest`: the write is durable (per each replica's sync mode) on at least
/// `required` replicas.
public struct WriteAck: Hashable, Sendable {
    /// Replicas that acknowledged before the answer was sent.
    public var acknowledged: UInt8
    /// Replicas the consistency level required.
    public var required: UInt8

    public init(acknowledged: UInt8, required: UInt8) {
        self.acknowledged = acknowledged
        self.required = required
    }
}
