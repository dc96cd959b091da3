/// Which ranges move where when a node joins or leaves, so that after the change every range again
/// lives on exactly its `rf` replicas and nothing is lost (Cassandra's RangeStreamer /
/// StorageService.calculatePendingRanges). Pure: computed from the ring before and after.
package enum RangeMovement {
    /// A range a node must receive, and the replicas it may stream it from.
    ///
    /// Strict, as Cassandra's consistent range movement: when a current replica gives the range
    /// up, that node is the only source. The replicas that keep the range may lack a write the
    /// leaving one has (a QUORUM write acknowledged by the giver and one keeper, missed by the
    /// other keeper): copying a keeper would leave that write on one replica of the new set,
    /// below QUORUM. Only when nobody gives the range up (a ring smaller than the factor grows)
    /// is every current replica a source.
    package struct Fetch: Hashable, Sendable {
        package var range: TokenRange
        package var sources: [NodeID]
    }

    /// A range a leaving node must hand over, and the nodes that become its replicas.
    package struct Handoff: Hashable, Sendable {
        package var range: TokenRange
        package var targets: [NodeID]
    }

    /// What `joining` (with `tokens`) must stream before it may serve reads: every range it will
    /// replicate in the new ring, each with its strict source (see `Fetch`).
    package static func bootstrap(ring: TokenRing, joining: NodeID, tokens: [Token], replicationFactor rf: Int) throws
        -> [Fetch]
    {
        guard !ring.isEmpty else { return [] }
        var after = ring
        try after.add(joining, tokens: tokens)
        var out: [Fetch] = []
        // Per vnode range (not coalesced: neighbouring ranges have different replica sets).
        for (range, replicas) in after.rangesWithReplicas(replicationFactor: rf) where replicas.contains(joining) {
            // The new ring's tokens include all the old ones, so each new range lies inside one old
            // range; its end token names it.
            let before = ring.replicas(for: range.end, replicationFactor: rf)
            let still = Set(after.replicas(for: range.end, replicationFactor: rf))
            let givers = before.filter { !still.contains($0) }
            out.append(Fetch(range: range, sources: givers.isEmpty ? before : givers))
        }
        return out
    }

    /// What `leaving` must stream before it may go: for each range it replicates now, the nodes
    /// that replicate the range once it is gone but did not before.
    package static func decommission(ring: TokenRing, leaving: NodeID, replicationFactor rf: Int) -> [Handoff] {
        var after = ring
        after.remove(leaving)
        guard !after.isEmpty else { return [] }
        var out: [Handoff] = []
        // Per vnode range of the old ring: each lies inside one range of the new ring.
        for (range, replicas) in ring.rangesWithReplicas(replicationFactor: rf) where replicas.contains(leaving) {
            let before = Set(replicas)
            let targets = after.replicas(for: range.end, replicationFactor: rf).filter { !before.contains($0) }
            if !targets.isEmpty { out.append(Handoff(range: range, targets: targets)) }
        }
        return out
    }

    /// Ranges for which `node` is a pending replica while it joins: writes to them must also go to
    /// it (and count one extra toward blockFor) so nothing written during the stream is missed.
    package static func pendingRanges(ring: TokenRing, joining: NodeID, tokens: [Token], replicationFactor rf: Int)
        throws -> [TokenRange]
    {
        try bootstrap(ring: ring, joining: joining, tokens: tokens, replicationFactor: rf).map(\.range)
    }
}
