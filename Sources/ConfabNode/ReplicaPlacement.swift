import ConfabRing
import ConfabWire

/// Which nodes hold a key, per keyspace: SimpleStrategy on the token ring (the next RF distinct
/// nodes clockwise from the key's token) at the replication factor of the key's keyspace. Writes,
/// reads, read repair, hints (a hint goes to a replica the write chose) and repair all ask this
/// one value, so they agree on a keyspace's replica sets.
///
/// A keyspace's factor is capped at the ring's node count: a ring with fewer nodes than the
/// factor uses all of them (a deviation from Cassandra, which answers `unavailable`; see
/// docs/ring.md § Keyspaces).
struct ReplicaPlacement: Sendable {
    let ring: TokenRing
    let schema: SchemaRegistry

    /// The factor requests on `keyspace` use: the configured one, capped at the ring's size.
    func replicationFactor(keyspace: String) -> Int {
        capped(schema.replicationFactor(keyspace: keyspace))
    }

    /// The replicas of `partitionKey` in `keyspace`, in ring order (primary first).
    func replicas(forPartitionKey partitionKey: [UInt8], keyspace: String) -> [NodeID] {
        replicas(forPartitionKey: partitionKey, configuredFactor: schema.replicationFactor(keyspace: keyspace))
    }

    /// The replicas of `partitionKey` for a keyspace whose configured factor the caller already
    /// looked up (`SchemaRegistry.replicationFactor`), capped at the ring's size like the above.
    func replicas(forPartitionKey partitionKey: [UInt8], configuredFactor rf: Int) -> [NodeID] {
        ring.replicas(for: Token(partitionKey: partitionKey), replicationFactor: capped(rf))
    }

    /// A configured factor capped at the ring's size (at least 1).
    private func capped(_ rf: Int) -> Int { max(1, min(rf, ring.nodeCount)) }

    /// Every vnode range with its replicas in `keyspace`, in token order (what repair compares).
    func rangesWithReplicas(keyspace: String) -> [(range: TokenRange, replicas: [NodeID])] {
        ring.rangesWithReplicas(replicationFactor: replicationFactor(keyspace: keyspace))
    }
}

extension ClusterSnapshot {
    /// Replica placement on this snapshot's ring with `schema`'s keyspace factors.
    func placement(_ schema: SchemaRegistry) -> ReplicaPlacement {
        ReplicaPlacement(ring: ring, schema: schema)
    }
}
