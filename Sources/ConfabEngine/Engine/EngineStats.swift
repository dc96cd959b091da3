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
    /// Groups the blocking writers were written in, and the writers they held (their ratio is the
    /// mean group size; async writes are not grouped).
    public var writeGroups: UInt64 = 0
    public var groupedWriters: UInt64 = 0
    /// SSTables slice reads opened an iterator on (a page filled from newer tables opens no older
    /// one).
    public var sstablesOpenedByReads: UInt64 = 0

    /// (WAL + flush + compaction bytes) / user bytes.
    public var writeAmplification: Double {
        userBytesWritten == 0
            ? 0 : Double(walBytesWritten + flushBytesWritten + compactionBytesWritten) / Double(userBytesWritten)
    }
}
