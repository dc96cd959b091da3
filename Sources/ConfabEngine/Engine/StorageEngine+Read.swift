extension StorageEngine {
    /// Reads a slice of one partition: live rows only, newest version of every cell, deleted and
    /// expired data left out. Sees every write that returned before the call.
    ///
    /// Cost: one bloom check per SSTable, then for each source that may hold the partition a
    /// header lookup and an index seek to the start of the slice — independent of how many rows the
    /// partition holds — and then only the blocks the returned rows live in.
    public func read(_ query: SliceQuery) throws -> SliceResult {
        var rows: [ResultRow] = []
        rows.reserveCapacity(min(max(query.limit, 0), 1024))
        let now = options.clock.nowSeconds()
        let outcome = try mergeSlice(query) { clustering, row in
            guard row.isLive(now: now) else { return false }
            let cells =
                row.cells.allSatisfy { $0.isLive(now: now) } ? row.cells : row.cells.filter { $0.isLive(now: now) }
            rows.append(ResultRow(clustering: clustering, cells: cells))
            return true
        }
        return SliceResult(rows: rows, cursor: outcome.cursor, tombstonesScanned: outcome.tombstones)
    }

    /// A replica's answer for read repair: the same slice as `read`, but as reconciled row
    /// fragments with their timestamps and tombstones, plus the partition header, so a coordinator
    /// can compare replicas and repair the stale ones. `limit` counts live rows; dead rows met on
    /// the way are included.
    package func readRaw(_ query: SliceQuery) throws -> RawSlice {
        var rows: [Mutation.Row] = []
        let now = options.clock.nowSeconds()
        let outcome = try mergeSlice(query) { clustering, row in
            rows.append(Mutation.Row(clustering: clustering, fragment: row))
            return row.isLive(now: now)
        }
        return RawSlice(header: outcome.header, rows: rows, cursor: outcome.cursor)
    }

    struct MergeOutcome {
        var header: PartitionHeader
        var cursor: [UInt8]?
        var tombstones: Int
    }

    /// Merges every source's rows of the slice in query order, reconciled and with partition, range
    /// and row deletions applied, handing each to `emit` until it has accepted `limit` rows
    /// (`emit` returns whether the row counts).
    func mergeSlice(_ query: SliceQuery, emit: ([UInt8], RowFragment) throws -> Bool) throws -> MergeOutcome {
        guard !query.partitionKey.isEmpty, query.partitionKey.count <= Int(UInt16.max) else {
            throw StorageError(
                .invalidArgument, "partition key must be 1...65535 bytes (got \(query.partitionKey.count))")
        }
        guard query.limit > 0 else { return MergeOutcome(header: PartitionHeader(), cursor: nil, tombstones: 0) }
        let prefix = InternalKey.partitionPrefix(table: query.table, partitionKey: query.partitionKey)
        let (memtables, candidates) = state.withLock { () -> ([Memtable], [SSTableReader]) in
            ([active] + frozen.reversed().map(\.memtable), tables)
        }
        let ssts = candidates.filter { t in
            t.mayContainPartition(prefix)
                && compareBytes(t.statistics.minKey, InternalKey.prefixSuccessor(prefix) ?? [0xFF]) < 0
                && compareBytes(t.statistics.maxKey, prefix) >= 0
        }
        metrics.reads.increment()

        // Partition-level deletions from every source.
        var header = PartitionHeader()
        for m in memtables {
            if let v = m.header(prefix), case .header(let h) = try EntryValue.decode(v) { header = .merge(header, h) }
        }
        // A table with no tombstones has no header entries (an empty header is never written).
        for t in ssts where t.statistics.tombstoneCount > 0 {
            if let v = try t.get(prefix), case .header(let h) = try decodeValue(v, from: t) {
                header = .merge(header, h)
            }
        }

        let (lo, hi) = query.clusteringRange()
        if let hi, compareBytes(lo, hi) >= 0 { return MergeOutcome(header: header, cursor: nil, tombstones: 0) }
        let lowKey = prefix + lo
        let highKey =
            hi.map { prefix + $0 }
            ?? (InternalKey.prefixSuccessor(prefix) ?? [UInt8](repeating: 0xFF, count: prefix.count + 1))

        var iterators: [(any EntryIterator, SSTableReader?)] = memtables.map { ($0.makeIterator(), nil) }
        // The current in-range key of each source (nil when exhausted), read once per move: a key
        // read from an iterator is a copy, so the merge below never asks twice.
        var current: [[UInt8]?] = []
        current.reserveCapacity(iterators.count + ssts.count)
        func position(_ it: any EntryIterator) -> [UInt8]? {
            guard it.isValid else { return nil }
            let k = it.key
            return compareBytes(k, lowKey) >= 0 && compareBytes(k, highKey) < 0 ? k : nil
        }
        func open(_ it: any EntryIterator) throws {
            if query.reversed { try it.seekBefore(highKey) } else { try it.seek(lowKey) }
            current.append(position(it))
        }
        for (it, _) in iterators { try open(it) }

        // SSTables open lazily, nearest edge first: a table whose clustering keys (all partitions'
        // bounds, from its statistics) all lie beyond the row the merge is at cannot hold a row
        // before it, so a page filled from newer tables never opens older ones — a newest-first
        // page of a chat reads the tables its messages are in, not every table.
        var waiting: [(edge: [UInt8], table: SSTableReader)] = []
        for t in ssts {
            let bound = query.reversed ? t.statistics.maxClustering : t.statistics.minClustering
            if bound.isEmpty && t.statistics.rowCount > 0 {
                // No bound recorded: open it now, as every table was opened before.
                let it = t.makeIterator()
                iterators.append((it, t))
                readTableOpens.add(1, ordering: .relaxed)
                try open(it)
            } else {
                waiting.append((prefix + bound, t))
            }
        }
        // Nearest edge last.
        waiting.sort { query.reversed ? compareBytes($0.edge, $1.edge) < 0 : compareBytes($0.edge, $1.edge) > 0 }
        /// Opens the waiting tables that may hold a key at or before `key` in query order; when
        /// `key` is nil (no open source has a row left), the one with the nearest edge. Returns
        /// whether it opened any.
        func openTables(reaching key: [UInt8]?) throws -> Bool {
            var opened = false
            while let next = waiting.last {
                if let key {
                    let c = compareBytes(next.edge, key)
                    guard query.reversed ? c >= 0 : c <= 0 else { break }
                }
                waiting.removeLast()
                let it = next.table.makeIterator()
                iterators.append((it, next.table))
                readTableOpens.add(1, ordering: .relaxed)
                try open(it)
                opened = true
                if key == nil { break }
            }
            return opened
        }

        var accepted = 0
        var tombstones = 0
        var cursor: [UInt8]? = nil
        while true {
            var best = -1
            for i in current.indices {
                guard let k = current[i] else { continue }
                if best < 0 {
                    best = i
                    continue
                }
                let c = compareBytes(k, current[best]!)
                if query.reversed ? c > 0 : c < 0 { best = i }
            }
            // Tables that may hold a row before the best one join first; then pick again.
            if !waiting.isEmpty, try openTables(reaching: best < 0 ? nil : current[best]) { continue }
            guard best >= 0, let key = current[best] else { break }
            var fragment: RowFragment? = nil
            for i in current.indices where current[i] != nil && (i == best || current[i]! == key) {
                let (it, source) = iterators[i]
                if case .row(let f) = try decodeCurrent(it, from: source) {
                    fragment = fragment.map { RowFragment.merge($0, f) } ?? f
                }
                if query.reversed { try it.prev() } else { try it.next() }
                current[i] = position(it)
            }
            guard var row = fragment else { continue }
            let clustering = Array(key[prefix.count...])
            if let d = header.deletion(covering: clustering) {
                row.applyDeletion(d)
                if let own = row.deletion, own <= d { row.deletion = nil }
            }
            if try emit(clustering, row) {
                accepted += 1
                if accepted == query.limit {
                    cursor = clustering
                    break
                }
            } else {
                tombstones += 1
            }
        }
        if tombstones > 0 { metrics.tombstonesScanned.increment(by: tombstones) }
        return MergeOutcome(header: header, cursor: cursor, tombstones: tombstones)
    }

    private func decodeValue(_ bytes: [UInt8], from table: SSTableReader?) throws -> EntryValue {
        try annotate(table) { try EntryValue.decode(bytes) }
    }

    private func decodeCurrent(_ it: any EntryIterator, from table: SSTableReader?) throws -> EntryValue {
        try annotate(table) { try it.decodedValue() }
    }

    private func annotate(_ table: SSTableReader?, _ body: () throws -> EntryValue) throws -> EntryValue {
        do {
            return try body()
        } catch var e as StorageError {
            if let table {
                e.message = "an entry in an SSTable does not decode: \(e.message); run `confab sstable verify`"
                e.path = table.path
            }
            throw e
        }
    }
}

/// A slice as reconciled row fragments with timestamps and tombstones (see `readRaw`).
package struct RawSlice: Sendable, Hashable {
    package var header: PartitionHeader
    /// In query order; dead rows (tombstones) included.
    package var rows: [Mutation.Row]
    /// Resume after this clustering key; nil when the slice is known to be done.
    package var cursor: [UInt8]?

    package init(header: PartitionHeader, rows: [Mutation.Row], cursor: [UInt8]?) {
        self.header = header
        self.rows = rows
        self.cursor = cursor
    }
}
