import ConfabRing

/// What one coordinated request needs from the ring runtime, copied at the request's start: the
/// token ring, this node, and who is believed alive. A value, so a request's replica choice and
/// liveness verdict do not change under it.
struct ClusterSnapshot: Sendable {
    let local: NodeID
    let ring: TokenRing
    /// The configured replication factor.
    let replicationFactor: Int
    /// Members believed alive (gossip's failure detector, minus peers that just refused a
    /// connection), this node included.
    let alive: Set<NodeID>
    /// Live JOINING members (not owners yet).
    let joining: [NodeID]
    /// Ranges gained by nodes while one joins or leaves, per keyspace replication factor
    /// (docs/ring.md § Bootstrap).
    var pending: [Int: PendingRanges] = [:]

    /// How many replicas a key has in this ring: the configured factor, or every node when the
    /// ring is smaller. Only placement uses it; how many acknowledgements a level needs comes
    /// from the configured factor, so a ring smaller than the factor answers `unavailable` at
    /// QUORUM rather than acknowledging fewer copies (Cassandra's rule; docs/ring.md § Runtime).
    var effectiveReplicationFactor: Int { max(1, min(replicationFactor, ring.nodeCount)) }

    func isAlive(_ node: NodeID) -> Bool { alive.contains(node) }

    /// Nodes gaining the key's range through a join or leave in progress, alive or not: a write
    /// goes to them too (and waits for one more acknowledgement each; one believed down is
    /// hinted), reads never do — as Cassandra sends writes to bootstrapping nodes and to the new
    /// owners of a leaving node's ranges.
    /// `replicationFactor` is the keyspace's configured factor.
    func pendingReplicas(forPartitionKey key: [UInt8], replicationFactor: Int) -> [NodeID] {
        guard let ranges = pending[replicationFactor], !ranges.isEmpty else { return [] }
        return ranges.replicas(for: Token(partitionKey: key))
    }

    /// The key's replicas in ring order (primary first).
    func replicas(forPartitionKey key: [UInt8]) -> [NodeID] {
        ring.replicas(for: Token(partitionKey: key), replicationFactor: effectiveReplicationFactor)
    }
}
