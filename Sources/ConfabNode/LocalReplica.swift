import ConfabEngine
import ConfabRing
import NIOPosix

/// This node's own data as a replica: what a coordinator does for itself and what the replica
/// side of the internode protocol (ReplicaWrite, ReplicaRead, HintReplay) does for peers.
///
/// Guarantees: `apply` returns once the engine made the mutation durable per the sync mode (the
/// engine's async write parks on the WAL group commit, no thread held); `read` runs the blocking
/// raw read on the thread pool, never on an event loop, and sees every write that returned
/// before it started.
struct LocalReplica: Sendable {
    let engine: StorageEngine
    let threadPool: NIOThreadPool

    func apply(_ mutation: Mutation) async throws {
        try await engine.write(mutation)
    }

    /// The slice's raw fragments (timestamps and tombstones), as the ring reconciles them.
    func read(_ query: SliceQuery) async throws -> ReplicaReadResult {
        let engine = self.engine
        let raw = try await threadPool.runIfActive { try engine.readRaw(query) }
        return ReplicaReadResult(header: raw.header, rows: raw.rows, cursor: raw.cursor)
    }

    /// Bytes on disk (SSTables and WAL), what the node gossips as its load.
    func diskBytes() async throws -> UInt64 {
        let engine = self.engine
        return try await threadPool.runIfActive { engine.stats.diskBytes }
    }
}
