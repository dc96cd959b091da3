/// Merges sorted entry streams into one for compaction: reconciles versions of the same key,
/// applies partition and range deletions to the rows they shadow, turns expired cells into
/// tombstones, and purges tombstones whose grace period has passed — but only when no table
/// outside the compaction (nor a memtable) could hold older data they still shadow, which is what
/// keeps deleted data from coming back.
final class CompactionMerger {
    struct Purge {
        /// Current time in seconds.
        var now: Int64
        var gcGraceSeconds: Int64
        /// For a partition prefix: tombstones with a timestamp below this may be dropped (the
        /// smallest timestamp of any data for the partition outside this compaction).
        var maxPurgeableTimestamp: ([UInt8]) -> Int64
    }

    private let inputs: [any EntryIterator]
    private let purge: Purge
    private var currentPrefix: [UInt8] = []
    private var currentHeader = PartitionHeader()
    private var currentPurgeable: Int64 = .min

    init(inputs: [any EntryIterator], purge: Purge) {
        self.inputs = inputs
        self.purge = purge
    }

    /// Calls `emit` with each output entry in key order.
    func run(_ emit: ([UInt8], [UInt8]) throws -> Void) throws {
        for it in inputs { try it.seekToFirst() }
        while true {
            var best: [UInt8]? = nil
            for it in inputs where it.isValid {
                if best == nil || compareBytes(it.key, best!) < 0 { best = it.key }
            }
            guard let key = best else { return }
            var merged: EntryValue? = nil
            for it in inputs where it.isValid && it.key == key {
                let v = try it.decodedValue()
                merged = merged.map { EntryValue.merge($0, v) } ?? v
                try it.next()
            }
            guard let value = merged else { continue }
            guard let prefixLength = InternalKey.prefixLength(of: key) else {
                throw StorageError(.corruption, "malformed key of \(key.count) bytes during compaction")
            }
            if compareBytes(key[0..<prefixLength], currentPrefix[...]) != 0 {
                // A new partition; its header entry, if any, sorts first.
                currentPrefix = Array(key[0..<prefixLength])
                currentHeader = PartitionHeader()
                currentPurgeable = purge.maxPurgeableTimestamp(currentPrefix)
            }
            if let out = process(key: key, clusteringStart: prefixLength, value: value) {
                try emit(key, out.encoded())
            }
        }
    }

    private func purgeable(_ d: DeletionTime) -> Bool {
        d.localDeletionTime + purge.gcGraceSeconds < purge.now && d.timestamp < currentPurgeable
    }

    private func process(key: [UInt8], clusteringStart: Int, value: EntryValue) -> EntryValue? {
        switch value {
        case .header(var h):
            currentHeader = h  // shadowing uses the full header, purged or not
            if let d = h.deletion, purgeable(d) { h.deletion = nil }
            h.rangeTombstones.removeAll { purgeable($0.deletion) }
            return h.isEmpty ? nil : .header(h)
        case .row(var row):
            let clustering = Array(key[clusteringStart...])
            if let d = currentHeader.deletion(covering: clustering) {
                row.applyDeletion(d)
                if let rd = row.deletion, rd <= d { row.deletion = nil }
            }
            if let d = row.deletion, purgeable(d) { row.deletion = nil }
            if let l = row.liveness, !l.isLive(now: purge.now) {
                // An expired row marker acts as a tombstone from its expiry on.
                let asTombstone = DeletionTime(timestamp: l.timestamp, localDeletionTime: l.expiresAt)
                if purgeable(asTombstone) { row.liveness = nil }
            }
            var cells: [Cell] = []
            cells.reserveCapacity(row.cells.count)
            for var c in row.cells {
                if c.isExpiring && !c.isLive(now: purge.now) {
                    c = .tombstone(column: c.column, timestamp: c.timestamp, localDeletionTime: c.localExpiry)
                }
                if c.isTombstone && purgeable(DeletionTime(timestamp: c.timestamp, localDeletionTime: c.localExpiry)) {
                    continue
                }
                cells.append(c)
            }
            row.cells = cells
            if row.liveness == nil && row.deletion == nil && row.cells.isEmpty { return nil }
            return .row(row)
        }
    }
}
