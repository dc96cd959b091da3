/// A single-node LSM store: write-ahead log, memtable, SSTables, manifest, background compaction.
///
/// Guarantees: `write` returns after the mutation is durable per `EngineOptions.syncMode`
/// (fdatasynced for `batch` and `group`); a mutation is applied atomically (after a crash all of it
/// or none of it is visible); reads see every acknowledged write. Thread-safe.
public final class StorageEngine: @unchecked Sendable {
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> StorageEngine {
        fatalError("in progress")
    }

    /// Durable per the sync mode when it returns. Blocks the calling thread during the sync; use
    /// the async overload from Swift concurrency.
    public func write(_ mutation: Mutation) throws { fatalError("in progress") }
    public func write(_ mutations: [Mutation]) throws { fatalError("in progress") }
    public func write(_ mutation: Mutation) async throws { fatalError("in progress") }

    public func read(_ query: SliceQuery) throws -> SliceResult { fatalError("in progress") }

    /// Flushes the memtable to an SSTable and waits for it.
    public func flush() throws { fatalError("in progress") }
    /// Merges every SSTable into as few as the strategy allows, and waits (major compaction).
    public func compact() throws { fatalError("in progress") }
    /// Waits until no flush or compaction is pending or running.
    public func waitForBackgroundWork() throws { fatalError("in progress") }
    public func close() throws { fatalError("in progress") }
    public var stats: EngineStats { fatalError("in progress") }
}

