import ConfabEngine
import ConfabRing
import NIOCore
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

    /// `apply` for a request served on an event loop, with no task: the write is staged on this
    /// thread (a memory copy), made visible on `loop` once its WAL sync returns, and `done` is
    /// called then (nil) or with the error.
    func apply(_ mutation: Mutation, on loop: any EventLoop, done: @escaping @Sendable ((any Error)?) -> Void) {
        engine.write(mutation, apply: { loop.execute($0) }, done: done)
    }

    /// The slice's raw fragments (timestamps and tombstones), as the ring reconciles them. The
    /// read runs on the thread pool and `done` is called there: no task.
    func read(_ query: SliceQuery, done: @escaping @Sendable (Result<ReplicaReadResult, any Error>) -> Void) {
        let engine = self.engine
        threadPool.submit { state in
            guard case .active = state else {
                done(.failure(StorageError(.closed, "the node is shutting down; its read threads have stopped")))
                return
            }
            done(
                Result {
                    let raw = try Self.retryingAfterQuarantine(engine) { try engine.readRaw(query) }
                    return ReplicaReadResult(header: raw.header, rows: raw.rows, cursor: raw.cursor)
                })
        }
    }

    /// Runs `body` on the thread pool; when it meets a corrupt SSTable, quarantines the corrupt
    /// tables (`StorageEngine.quarantineCorruptTables`) and runs it once more. A bad block would
    /// otherwise fail every read of its partitions here and every repair of its table for good;
    /// without the table this replica answers like one that missed those writes, and read repair
    /// or `confab repair` restores them from the others. Reads, Merkle trees and streams all go
    /// through here.
    func quarantiningCorruption<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let engine = self.engine
        return try await threadPool.runIfActive { try Self.retryingAfterQuarantine(engine, body) }
    }

    /// `body`, run once more after quarantining the corrupt tables it met (blocking; call it on
    /// the thread pool).
    private static func retryingAfterQuarantine<T>(_ engine: StorageEngine, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StorageError where error.code == .corruption {
            let moved = try engine.quarantineCorruptTables()
            // Nothing bad among the live tables: the corruption is elsewhere (a WAL, a race
            // with a compaction that already replaced the table); report it as it was.
            guard !moved.isEmpty else { throw error }
            return try body()
        }
    }

    /// Bytes on disk (SSTables and WAL), what the node gossips as its load.
    /// SSTables in the engine's quarantine directory (corrupt, out of the read path).
    func quarantinedTables() async throws -> Int {
        let engine = self.engine
        return try await threadPool.runIfActive { engine.quarantinedTableNames.count }
    }

    func diskBytes() async throws -> UInt64 {
        let engine = self.engine
        return try await threadPool.runIfActive { engine.stats.diskBytes }
    }
}
