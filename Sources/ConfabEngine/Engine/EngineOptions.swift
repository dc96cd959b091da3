/// How an engine runs. Defaults suit a node on a small machine.
public struct EngineOptions: Sendable {
    /// When writes are acknowledged relative to fdatasync (default: group commit).
    public var syncMode: SyncMode = .group
    /// How long `group` mode gathers records before each fdatasync.
    public var groupCommit = GroupCommitWindow()
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

/// Group commit gathering (`SyncMode.group`): before each fdatasync the sync thread waits while
/// records keep arriving — each within `quietMicros` of the last — for at most `windowMicros`, so
/// one fdatasync covers more writes. A lone write waits one quiet interval.
///
/// Why these defaults (250 µs, 2 ms; Cassandra's group window is 1 s by default): fewer, larger
/// syncs cost a node less CPU per write — each sync is a write, an fdatasync, a sync marker and
/// several wake-ups — and on a machine shared by the nodes (and by their disk) that CPU is the
/// write latency. `confab-bench ring --quick`, three alternating pairs against 40 µs / 400 µs
/// (before `maxWrites`): RF-3 write p99 at half the peak 14.1–15.9 ms against 21.6–27.3 ms, node
/// CPU per RF-3 write there 212–316 µs against 280–335 µs; a single node's median write at half its
/// peak rose from 1.2–1.9 ms to 2.5–3.0 ms, the RF-3 median did not move beyond the noise (3.0–4.1
/// against 2.4–6.6 ms). 250 µs / 2 ms also beat 100 µs / 1 ms (RF-3 p99 9.4–11.1 against
/// 13.2–15.8 ms in three pairs); 500 µs / 4 ms did not clearly beat it. Without `maxWrites` a single node's
/// closed-loop peak fell by up to a third (its 64 writers' next writes arrive spread over the
/// window). The 64-writer engine rounds did not change (their writers block, and writer groups
/// already batch them). 0 / 0 syncs at once.
public struct GroupCommitWindow: Sendable, Hashable {
    public var quietMicros: Int = 250
    public var windowMicros: Int = 2_000
    /// Gathering ends as soon as this many writes are queued (0: no limit): beyond a few dozen
    /// writes per fdatasync a sync costs little more per write, and writers that all wait for
    /// this sync (a closed loop of clients) would otherwise wait out the whole window. It gave
    /// back the single node's closed-loop peak in three alternating pairs (22.7k–23.2k/s against
    /// 16.2k–18.6k/s without it), with the RF-3 figures unchanged within the noise.
    public var maxWrites: Int = 32

    public init(quietMicros: Int = 250, windowMicros: Int = 2_000, maxWrites: Int = 32) {
        self.quietMicros = quietMicros
        self.windowMicros = windowMicros
        self.maxWrites = maxWrites
    }
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
