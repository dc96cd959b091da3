/// Chooses which SSTables to merge next: time-window compaction with size-tiering inside the newest
/// window. Pure logic (no I/O), so it is tested on plain descriptions of tables.
///
/// Why this strategy for chat: messages are appended in time order and almost never updated, and
/// reads want the newest rows of a chat. Grouping SSTables by the time window of their newest
/// write keeps each closed window as one table that is never rewritten again (write
/// amplification stays near 1 per window instead of growing with the data as in leveled
/// compaction), old history is not re-compacted forever, and a "latest 50" read mostly touches
/// the newest window's few tables. Inside the open window, size-tiering (merge ~4 similar-sized
/// tables) keeps the table count logarithmic while flushes arrive. See docs/compaction.md.
struct CompactionPlanner {
    struct Table: Hashable {
        var fileNumber: UInt64
        var size: Int
        var maxTimestamp: Int64
        var minTimestamp: Int64 = .min
        /// Latest local deletion time of any tombstone or expiring value; `Int64.min` for none.
        var maxLocalDeletionTime: Int64 = .min
        /// Partition prefixes of the first and last key.
        var firstPartition: [UInt8] = []
        var lastPartition: [UInt8] = []
    }

    /// What a single-table tombstone compaction needs to know besides the tables.
    struct PurgeContext {
        /// Seconds.
        var now: Int64
        var gcGraceSeconds: Int64
        /// Smallest timestamp held by any memtable (`Int64.max` when they are empty).
        var memtableMinTimestamp: Int64
    }

    var options: CompactionOptions

    func window(of t: Table) -> Int64 {
        let seconds = t.maxTimestamp / 1_000_000
        let w = max(1, options.windowSeconds)
        return seconds >= 0 ? seconds / w : (seconds - w + 1) / w
    }

    /// File numbers to compact together, or nil when nothing is due.
    func pick(_ tables: [Table]) -> [UInt64]? {
        guard tables.count >= 2 else { return nil }
        let byWindow = Dictionary(grouping: tables, by: window(of:))
        guard let newest = byWindow.keys.max() else { return nil }
        // The open window: size-tiered.
        if let bucket = sizeTieredBucket(byWindow[newest] ?? []) { return bucket }
        // Closed windows: merged into a single table each, oldest first.
        for w in byWindow.keys.sorted() where w != newest {
            let ts = byWindow[w]!
            if ts.count >= 2 {
                return ts.sorted { $0.size < $1.size }.prefix(options.maxThreshold).map(\.fileNumber)
            }
        }
        return nil
    }

    /// Cassandra's single-SSTable tombstone compaction, for tables no merge would ever touch (the
    /// only table of a closed window, say): a table whose tombstones and expiring values are all
    /// past the grace period, and for whose partitions no other table (by key range, which unlike
    /// a bloom filter is never wrong) and no memtable holds data as old as its newest write, is rewritten alone — which purges every one of them (the
    /// merger's purge conditions all hold), so the output is never picked again.
    func tombstoneCompaction(_ tables: [Table], _ context: PurgeContext) -> [UInt64]? {
        for t in tables.sorted(by: { $0.fileNumber < $1.fileNumber }) {
            guard t.maxLocalDeletionTime != .min,
                t.maxLocalDeletionTime < context.now - context.gcGraceSeconds,
                t.maxTimestamp < context.memtableMinTimestamp
            else { continue }
            let shadowsElsewhere = tables.contains { o in
                o.fileNumber != t.fileNumber && o.minTimestamp <= t.maxTimestamp
                    && compareBytes(o.firstPartition, t.lastPartition) <= 0
                    && compareBytes(t.firstPartition, o.lastPartition) <= 0
            }
            if !shadowsElsewhere { return [t.fileNumber] }
        }
        return nil
    }

    /// Cassandra's size-tiered bucketing: tables within [avg*low, avg*high] of a bucket's average
    /// size join it; the bucket with the most tables (at least minThreshold) wins.
    func sizeTieredBucket(_ tables: [Table]) -> [UInt64]? {
        guard tables.count >= options.minThreshold else { return nil }
        var buckets: [[Table]] = []
        for t in tables.sorted(by: { $0.size < $1.size }) {
            if let i = buckets.firstIndex(where: { b in
                let avg = Double(b.reduce(0) { $0 + $1.size }) / Double(b.count)
                return Double(t.size) >= avg * options.bucketLow && Double(t.size) <= avg * options.bucketHigh
            }) {
                buckets[i].append(t)
            } else {
                buckets.append([t])
            }
        }
        let eligible = buckets.filter { $0.count >= options.minThreshold }
        guard let best = eligible.max(by: { $0.count < $1.count }) else { return nil }
        return best.prefix(options.maxThreshold).map(\.fileNumber)
    }
}
