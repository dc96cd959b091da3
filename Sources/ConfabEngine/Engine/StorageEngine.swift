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

/// Counters for benchmarks and status output.
public struct EngineStats: Sendable, Hashable, Codable {
    /// Encoded size of all mutations written (the "user bytes" of write amplification).
    public var userBytesWritten: UInt64 = 0
    public var walBytesWritten: UInt64 = 0
    public var flushBytesWritten: UInt64 = 0
    public var compactionBytesWritten: UInt64 = 0
    public var compactionBytesRead: UInt64 = 0
    public var flushes: UInt64 = 0
    public var compactions: UInt64 = 0
    public var sstableCount: Int = 0
    /// Bytes of live SSTables plus WAL segments.
    public var diskBytes: UInt64 = 0
    public var memtableBytes: Int = 0
    /// Total time writers were slowed or held because flushing fell behind.
    public var stallMicros: UInt64 = 0
    public var writesStalled: UInt64 = 0

    /// (WAL + flush + compaction bytes) / user bytes.
    public var writeAmplification: Double {
        userBytesWritten == 0 ? 0 : Double(walBytesWritten + flushBytesWritten + compactionBytesWritten) / Double(userBytesWritten)
    }
}
