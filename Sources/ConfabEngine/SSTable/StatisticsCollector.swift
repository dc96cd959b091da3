/// Accumulates `SSTableStatistics` entry by entry: used by the writer, and again by `verify` to
/// check the stored statistics against the data.
struct StatisticsCollector {
    private(set) var statistics = SSTableStatistics()
    private var lastPrefix: [UInt8] = []

    /// Adds one entry; keys arrive in increasing order. Returns true when the entry starts a new
    /// partition.
    @discardableResult
    mutating func add(key: [UInt8], prefixLength: Int, valueBytes: Int, value: EntryValue) -> Bool {
        var s = statistics
        let isNewPartition =
            s.entryCount == 0
            || lastPrefix.count != prefixLength
            || !lastPrefix.elementsEqual(key[0..<prefixLength])
        if isNewPartition {
            s.partitionCount += 1
            lastPrefix = Array(key[0..<prefixLength])
        }
        if s.entryCount == 0 { s.minKey = key }
        s.maxKey = key
        s.entryCount += 1
        s.uncompressedBytes += key.count + valueBytes
        switch value {
        case .row(let row):
            s.rowCount += 1
            let clustering = Array(key[prefixLength...])
            if s.rowCount == 1 || compareBytes(clustering, s.minClustering) < 0 { s.minClustering = clustering }
            if s.rowCount == 1 || compareBytes(clustering, s.maxClustering) > 0 { s.maxClustering = clustering }
            s.tombstoneCount += row.tombstoneCount(now: .min)
            s.minTimestamp = min(s.minTimestamp, row.minTimestamp)
            s.maxTimestamp = max(s.maxTimestamp, row.maxTimestamp)
            if let d = row.deletion { s.maxLocalDeletionTime = max(s.maxLocalDeletionTime, d.localDeletionTime) }
            if let l = row.liveness, l.ttl > 0 { s.maxLocalDeletionTime = max(s.maxLocalDeletionTime, l.expiresAt) }
            for c in row.cells where c.isTombstone || c.ttl > 0 {
                s.maxLocalDeletionTime = max(s.maxLocalDeletionTime, c.localExpiry)
            }
        case .header(let h):
            var deletions = h.rangeTombstones.map(\.deletion)
            if let d = h.deletion { deletions.append(d) }
            s.tombstoneCount += deletions.count
            for d in deletions {
                s.minTimestamp = min(s.minTimestamp, d.timestamp)
                s.maxTimestamp = max(s.maxTimestamp, d.timestamp)
                s.maxLocalDeletionTime = max(s.maxLocalDeletionTime, d.localDeletionTime)
            }
        }
        statistics = s
        return isNewPartition
    }
}
