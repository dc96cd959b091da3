import ConfabRing

/// What one coordinated request needs from the ring runtime, copied at the request's start: the
/// token ring, this node, and who is believed alive. A value, so a request's replica choice and
/// liveness verdict do not change under it.
struct RingSnapshot: Sendable {
    let local: NodeID
    let ring: TokenRing
    /// The configured replication factor.
    let replicationFactor: Int
    /// Members believed alive (gossip's failure detector, minus peers that just refused a
    /// connection), this node included.
    let alive: Set<NodeID>
    /// Live JOINING members: they get every write as pending replicas (their tokens are not
    /// known before they go NORMAL, so all of them), so a write coordinated while a node joins
    /// does not miss it — as Cassandra sends writes to bootstrapping nodes.
    let joining: [NodeID]

    /// The factor requests use: the configured one, or every node when the ring is smaller (a
    /// deviation from Cassandra, which answers `unavailable`; see docs/ring.md § Runtime).
    var effectiveReplicationFactor: Int { max(1, min(replicationFactor, ring.nodeCount)) }

    func isAlive(_ node: NodeID) -> Bool { alive.contains(node) }

    /// The key's replicas in ring order (primary first).
    func replicas(forPartitionKey key: [UInt8]) -> [NodeID] {
        ring.replicas(for: Token(partitionKey: key), replicationFactor: effectiveReplicationFactor)
    }
}
