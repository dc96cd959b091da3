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

    /// Off only in tests, which compare the pass-through with decoding every entry.
    private let passThroughEnabled: Bool

    init(inputs: [any EntryIterator], purge: Purge, passThrough: Bool = true) {
        self.inputs = inputs
        self.purge = purge
        self.passThroughEnabled = passThrough
    }

    /// Calls `emit` with each output entry in key order. Both buffers are valid only during the
    /// call.
    ///
    /// A row only one input holds, with nothing to purge, expire or shadow in it (every row of an
    /// append-only table whose TTLs have not run out), is passed through as its stored bytes:
    /// checked and summarized in place, not decoded and re-encoded. Encoding is canonical, so
    /// those bytes are what re-encoding the decoded row would give.
    func run(_ emit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        for it in inputs { try it.seekToFirst() }
        var same: [Int] = []
        while true {
            var best = -1
            for i in inputs.indices where inputs[i].isValid {
                if best < 0 || inputs[i].withKey({ k in inputs[best].withKey { compareBytes(k, $0) } }) < 0 { best = i }
            }
            guard best >= 0 else { return }
            same.removeAll(keepingCapacity: true)
            same.append(best)
            for i in inputs.indices where i != best && inputs[i].isValid {
                if inputs[i].withKey({ k in inputs[best].withKey { compareBytes(k, $0) } }) == 0 { same.append(i) }
            }
            let it = inputs[best]
            let single = same.count == 1 && passThroughEnabled
            try it.withKey { key in
                guard let prefixLength = InternalKey.prefixLength(of: key) else {
                    throw StorageError(.corruption, "malformed key of \(key.count) bytes during compaction")
                }
                let prefix = UnsafeRawBufferPointer(rebasing: key[0..<prefixLength])
                if currentPrefix.withUnsafeBytes({ compareBytes(prefix, $0) }) != 0 {
                    // A new partition; its header entry, if any, sorts first.
                    currentPrefix = Array(prefix)
                    currentHeader = PartitionHeader()
                    currentPurgeable = purge.maxPurgeableTimestamp(currentPrefix)
                }
                if single,
                    try it.withValue({ try passThrough(key: key, clusteringStart: prefixLength, value: $0, emit) })
                {
                    return
                }
                var merged: EntryValue? = nil
                for i in same {
                    let v = try inputs[i].decodedValue()
                    merged = merged.map { EntryValue.merge($0, v) } ?? v
                }
                guard let value = merged else { return }
                let owned = Array(key)
                if let out = process(key: owned, clusteringStart: prefixLength, value: value) {
                    try owned.withUnsafeBytes { k in try out.encoded().withUnsafeBytes { try emit(k, $0) } }
                }
            }
            for i in same { try inputs[i].next() }
        }
    }

    /// Emits a row entry unchanged when compaction has nothing to do to it; returns false (and
    /// emits nothing) when it must be decoded: a header, a row deletion, an expired row marker,
    /// a tombstone or expired cell, an empty row, or a partition or range deletion over it.
    private func passThrough(
        key: UnsafeRawBufferPointer, clusteringStart: Int, value: UnsafeRawBufferPointer,
        _ emit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws -> Bool {
        guard
            let row = try RowView(clustering: UnsafeRawBufferPointer(rebasing: key[clusteringStart...]), encoded: value)
        else { return false }
        guard row.deletion == nil, row.cellCount > 0 || row.liveness != nil else { return false }
        if let l = row.liveness, !l.isLive(now: purge.now) { return false }
        guard row.allCellsLive(now: purge.now) else { return false }
        if !currentHeader.isEmpty, currentHeader.deletion(covering: row.clustering) != nil { return false }
        try emit(key, value)
        return true
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
