/// How an engine runs. Defaults suit a node on a small machine.
public struct EngineOptions: Sendable {
    /// When writes are acknowledged relative to fdatasync (default: group commit).
    public var syncMode: SyncMode = .group
    /// A memtable is frozen and flushed to an SSTable at this size.
    public var memtableBytes: Int = 64 << 20
    /// At most this many frozen memtables wait for flush; beyond it writers are slowed, then held,
    /// so memory stays bounded (see the `confab_engine_write_stall_*` metrics).
    public var maxFrozenMemtables: Int = 2
    /// Target uncompressed size of an SSTable data block.
    public var blockBytes: Int = 16 << 10
    /// Bloom filter bits per partition key (10 ≈ 1% false positives).
    public var bloomBitsPerKey: Int = 10
    /// Decompressed blocks kept in memory across reads.
    public var blockCacheBytes: Int = 128 << 20
    /// Loads a freshly flushed table's blocks into the block cache (RocksDB's
    /// `prepopulate_block_cache = kFlushOnly`), when the table's data is at most half the
    /// cache. Chat reads are mostly of the newest messages, which are what a flush writes: without
    /// it, the first read of each chat after a flush pays a block load (read, checksum,
    /// decompress, index), which was the latest-50 read's p99 in `confab-bench storage`.
    public var cacheFlushedTables: Bool = true
    /// WAL segment size before rolling to a new file.
    public var walSegmentBytes: Int = 64 << 20
    /// Compaction strategy and pacing.
    public var compaction = CompactionOptions()
    /// Tombstones are purged by compaction only after this many seconds (Cassandra's
    /// gc_grace_seconds), so a replica that missed the delete cannot resurrect the data.
    public var gcGraceSeconds: Int64 = 10 * 24 * 3600
    /// Disk access; tests inject faults here.
    package var fileSystem: any FileSystem = PosixFileSystem()
    /// Time source for TTL, grace periods and write timestamps.
    public var clock: any EngineClock = SystemClock()
    /// Run flushes and compactions on background threads (tests may turn this off and call
    /// `flush()` / `compact()` themselves for determinism).
    public var backgroundWork: Bool = true

    public init() {}
}

/// Compaction: time-window with size-tiering inside the newest window (see docs/compaction.md).
public struct CompactionOptions: Sendable {
    /// Width of a time window in seconds (by the newest write timestamp in an SSTable).
    public var windowSeconds: Int64 = 24 * 3600
    /// Size-tiered: this many similar-sized SSTables in one window are merged.
    public var minThreshold: Int = 4
    public var maxThreshold: Int = 32
    /// Tables within [avg * bucketLow, avg * bucketHigh] count as similar-sized.
    public var bucketLow: Double = 0.5
    public var bucketHigh: Double = 1.5
    /// Compaction write rate cap in bytes per second (0 = unthrottled).
    public var throughputBytesPerSecond: Int = 64 << 20
    public init() {}
}
