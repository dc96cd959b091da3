/// The ranges nodes are gaining while the ring changes, and who gains them: the pending replicas a
/// write coordinator adds to a key's natural replicas (Cassandra's `TokenMetadata.pendingRanges`).
///
/// A JOINING node that announced its tokens gains every range `RangeMovement.bootstrap` makes it
/// fetch; while a node is LEAVING, the nodes `RangeMovement.decommission` hands its ranges to gain
/// those. Sending them every write for those ranges from the moment coordinators learn of the
/// movement means the stream (taken after the ring delay) plus the writes received directly cover
/// everything — nothing written during the movement is missed. Reads never use pending replicas.
///
/// Pure and computed from the gossiped ring; movements of several nodes at once are computed each
/// against the current ring (as Cassandra does per movement), which is exact for one movement at
/// a time, the supported case.
package struct PendingRanges: Sendable, Hashable {
    /// One range a node is gaining because `mover` joins or leaves.
    package struct Entry: Sendable, Hashable {
        package var range: TokenRange
        /// The node gaining the range (the joining node itself, or a new owner of a leaving node's range).
        package var node: NodeID
        /// The node whose join or departure causes it.
        package var mover: NodeID
    }

    package private(set) var entries: [Entry] = []

    package init() {}

    /// - Parameters:
    ///   - joining: JOINING nodes that announced tokens (a joiner without tokens gains nothing yet).
    ///   - leaving: LEAVING nodes (members of `ring`).
    ///   - replicationFactor: the configured factor; as requests do, a ring smaller than it uses
    ///     every node (the ring after a join has one more node, after a leave one fewer).
    package init(
        ring: TokenRing, joining: [(node: NodeID, tokens: [Token])], leaving: [NodeID], replicationFactor rf: Int
    ) {
        guard !ring.isEmpty else { return }
        for (node, tokens) in joining where !tokens.isEmpty && !ring.contains(node) {
            let futureRF = max(1, min(rf, ring.nodeCount + 1))
            guard
                let ranges = try? RangeMovement.pendingRanges(
                    ring: ring, joining: node, tokens: tokens,
                    replicationFactor: futureRF)
            else { continue }
            entries += ranges.map { Entry(range: $0, node: node, mover: node) }
        }
        let currentRF = max(1, min(rf, ring.nodeCount))
        for node in leaving where ring.contains(node) {
            for handoff in RangeMovement.decommission(ring: ring, leaving: node, replicationFactor: currentRF) {
                entries += handoff.targets.map { Entry(range: handoff.range, node: $0, mover: node) }
            }
        }
    }

    package var isEmpty: Bool { entries.isEmpty }

    /// The nodes gaining `token`, sorted and without duplicates — whether or not they (or the
    /// mover) are believed alive. A pending replica is never dropped from a write: one believed
    /// down (a failure-detector verdict, or a 2 s unreachable mark after a refused connection)
    /// still counts toward blockFor and gets a hint, as Cassandra counts every pending endpoint.
    /// Dropping it instead lowered the acknowledgements a write needed and left the joiner with
    /// neither the write nor a hint, so it became NORMAL without it. A movement whose mover died
    /// stays pending until its state changes (it restarts or is removed), as in Cassandra.
    package func replicas(for token: Token) -> [NodeID] {
        var out: [NodeID] = []
        for e in entries where e.range.contains(token) && !out.contains(e.node) {
            out.append(e.node)
        }
        return out.sorted()
    }

    /// Every node gaining some range (for logs and status).
    package var gainingNodes: [NodeID] { Array(Set(entries.map(\.node))).sorted() }
}
