/// Accumulates `SSTableStatistics` entry by entry: used by the writer, and again by `verify` to
/// check the stored statistics against the data.
struct StatisticsCollector {
    private(set) var statistics = SSTableStatistics()
    private var lastPrefix: [UInt8] = []

    /// What the statistics need from one entry's value.
    enum Entry {
        /// A row: its timestamps, tombstones (as `RowFragment.tombstoneCount(now: .min)`) and the
        /// latest local deletion or expiry time in it.
        case row(minTimestamp: Int64, maxTimestamp: Int64, tombstones: Int, maxLocalDeletionTime: Int64)
        case header(PartitionHeader)

        init(_ view: RowView) {
            self = .row(
                minTimestamp: view.minTimestamp, maxTimestamp: view.maxTimestamp,
                tombstones: view.tombstoneCountForStatistics, maxLocalDeletionTime: view.maxLocalDeletionTime)
        }

        init(_ value: EntryValue) {
            switch value {
            case .header(let h): self = .header(h)
            case .row(let row):
                var local = Int64.min
                if let d = row.deletion { local = max(local, d.localDeletionTime) }
                if let l = row.liveness, l.ttl > 0 { local = max(local, l.expiresAt) }
                for c in row.cells where c.isTombstone || c.ttl > 0 { local = max(local, c.localExpiry) }
                self = .row(
                    minTimestamp: row.minTimestamp, maxTimestamp: row.maxTimestamp,
                    tombstones: row.tombstoneCount(now: .min), maxLocalDeletionTime: local)
            }
        }
    }

    @discardableResult
    mutating func add(key: [UInt8], prefixLength: Int, valueBytes: Int, value: EntryValue) -> Bool {
        key.withUnsafeBytes { add(key: $0, prefixLength: prefixLength, valueBytes: valueBytes, entry: Entry(value)) }
    }

    /// Adds one entry; keys arrive in increasing order. Returns true when the entry starts a new
    /// partition. Allocates only when a partition starts or a bound moves.
    @discardableResult
    mutating func add(key: UnsafeRawBufferPointer, prefixLength: Int, valueBytes: Int, entry: Entry) -> Bool {
        let prefix = UnsafeRawBufferPointer(rebasing: key[0..<prefixLength])
        let isNewPartition =
            statistics.entryCount == 0 || lastPrefix.withUnsafeBytes { compareBytes($0, prefix) != 0 }
        if isNewPartition {
            statistics.partitionCount += 1
            lastPrefix = Array(prefix)
        }
        if statistics.entryCount == 0 { statistics.minKey = Array(key) }
        // maxKey is the last key: the writer sets it once, in `finish(lastKey:)`.
        statistics.entryCount += 1
        statistics.uncompressedBytes += key.count + valueBytes
        switch entry {
        case .row(let lo, let hi, let tombstones, let local):
            statistics.rowCount += 1
            let clustering = UnsafeRawBufferPointer(rebasing: key[prefixLength...])
            if statistics.rowCount == 1
                || statistics.minClustering.withUnsafeBytes({ compareBytes(clustering, $0) < 0 })
            {
                statistics.minClustering = Array(clustering)
            }
            if statistics.rowCount == 1
                || statistics.maxClustering.withUnsafeBytes({ compareBytes(clustering, $0) > 0 })
            {
                statistics.maxClustering = Array(clustering)
            }
            statistics.tombstoneCount += tombstones
            statistics.minTimestamp = min(statistics.minTimestamp, lo)
            statistics.maxTimestamp = max(statistics.maxTimestamp, hi)
            statistics.maxLocalDeletionTime = max(statistics.maxLocalDeletionTime, local)
        case .header(let h):
            var deletions = h.rangeTombstones.map(\.deletion)
            if let d = h.deletion { deletions.append(d) }
            statistics.tombstoneCount += deletions.count
            for d in deletions {
                statistics.minTimestamp = min(statistics.minTimestamp, d.timestamp)
                statistics.maxTimestamp = max(statistics.maxTimestamp, d.timestamp)
                statistics.maxLocalDeletionTime = max(statistics.maxLocalDeletionTime, d.localDeletionTime)
            }
        }
        return isNewPartition
    }

    /// Records the last key added (the largest).
    mutating func finish(lastKey: [UInt8]) {
        if statistics.entryCount > 0 { statistics.maxKey = lastKey }
    }
}
