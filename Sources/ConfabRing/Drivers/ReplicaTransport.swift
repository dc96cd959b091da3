import ConfabEngine

/// How a request driver reaches a key's replicas, this node included: the one seam between the
/// coordination logic and the world. The node implements it over its internode connections and
/// its engine (`ConfabNode.NodeReplicaTransport`); the ring simulation over a simulated network
/// with loss, delay and crashes, so the simulation runs the same drivers the node does.
///
/// Every call answers through its completion exactly once — or never, when the process dies —
/// and may do so on any thread, before or after it returns.
package protocol ReplicaTransport: Sendable {
    /// Applies `mutation` on `replica` (a write or a read repair) and says how it went.
    func write(_ mutation: Mutation, to replica: NodeID, _ done: @escaping @Sendable (ReplicaOutcome<Void>) -> Void)

    /// Reads `query` on `replica`: its rows, or only their digest.
    func read(
        _ query: SliceQuery, digestOnly: Bool, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<ReplicaReadAnswer>) -> Void
    )

    /// Keeps `mutation` as a hint for `replica`, calling `done` once the hint is durable (or was
    /// dropped by the hint window): a write is acknowledged only after its start hints are on disk.
    func storeHint(_ mutation: Mutation, for replica: NodeID, _ done: @escaping @Sendable () -> Void)
}

/// What became of one request to a replica.
package enum ReplicaOutcome<Value: Sendable>: Sendable {
    /// The replica answered.
    case answered(Value)
    /// The replica answered with an error of its own (disk full, a table it does not serve…).
    case failed(String)
    /// The replica could not be reached (connection refused or lost, no answer in time). The
    /// transport has already told the node's failure bookkeeping; a driver may retry elsewhere.
    case unreachable(String)
}

/// A replica's answer to a read.
package enum ReplicaReadAnswer: Sendable {
    case data(ReplicaReadResult)
    case digest(ReadDigest)
}
