import ConfabEngine
import ConfabRing
import ConfabWire
import NIOPosix

/// Serves requests from this node's own engine: the single-node path, and later the replica side
/// of the ring. This node is the only replica, so every consistency level is met by its own
/// answer (each level's `blockFor` at RF 1 is 1).
///
/// Guarantees: a write returns after the engine made it durable per the node's sync mode; a read
/// sees every write that returned before it started. Reads run on `threadPool` (they may block on
/// disk); writes use the engine's async `write`, which parks on the WAL's group commit without
/// holding a thread.
public struct LocalProcessor: RequestProcessor {
    let engine: StorageEngine
    let threadPool: NIOThreadPool
    let replicationFactor = 1

    public init(engine: StorageEngine, threadPool: NIOThreadPool) {
        self.engine = engine
        self.threadPool = threadPool
    }

    public func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        let required = try requiredReplicas(consistency)
        try await engine.write(mutation)
        return WriteAck(acknowledged: 1, required: UInt8(required))
    }

    public func read(_ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool) async throws -> ReadResponse {
        _ = try requiredReplicas(consistency)
        let engine = self.engine
        let result = try await threadPool.runIfActive { try engine.read(query) }
        // The engine's read returns live cells only (with their timestamps); row liveness and
        // tombstones are not exposed yet, so replicas compare what is visible. The ring's replica
        // read needs the engine's raw slice (see docs/node.md § Ring integration).
        let rows = ReplicaRows(
            table: query.table, partitionKey: query.partitionKey,
            rows: result.rows.map { Mutation.Row(clustering: $0.clustering, fragment: RowFragment(cells: $0.cells)) },
            cursor: result.cursor, tombstonesScanned: UInt32(clamping: result.tombstonesScanned))
        return digestOnly ? .digest(rows.digest()) : .rows(rows)
    }

    /// A single node's ring: itself, normal, owning everything. The handler fills in its id.
    public func status() async throws -> RingStatus {
        let engine = self.engine
        let load = try await threadPool.runIfActive { engine.stats.diskBytes }
        return RingStatus(clusterName: "", replicationFactor: replicationFactor, nodes: [
            RingNodeStatus(state: "normal", isUp: true, id: "", host: "", port: 0, loadBytes: load, tokens: 0, ownership: 1),
        ])
    }

    /// Replicas the level needs; `unavailable` when more than the live replicas (one: this node).
    private func requiredReplicas(_ consistency: ConsistencyLevel) throws(WireError) -> Int {
        let required = consistency.blockFor(replicationFactor: replicationFactor)
        guard required <= 1 else {
            throw WireError(.unavailable, "consistency \(consistency.rawValue) needs \(required) replicas; 1 is alive")
        }
        return required
    }
}
