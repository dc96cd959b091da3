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
        let summary = try read(query) { row in
            var cells: [Cell] = []
            cells.reserveCapacity(row.cellCount)
            row.forEachLiveCell { cells.append($0.cell()) }
            rows.append(ResultRow(clustering: row.clusteringBytes, cells: cells))
        }
        return SliceResult(rows: rows, cursor: summary.cursor, tombstonesScanned: summary.tombstonesScanned)
    }

    /// Reads a slice as `read(_:)` does, handing each live row to `visit` in place instead of
    /// building result rows: the row's bytes are borrowed from the block cache (or a buffer the
    /// read reuses) and valid only during the call. A caller that encodes or copies out what it
    /// needs allocates nothing per row. `RowView.forEachLiveCell` gives the cells `read(_:)` would
    /// return.
    public func read(_ query: SliceQuery, visit: (RowView) throws -> Void) throws -> SliceSummary {
        let now = options.clock.nowSeconds()
        var count = 0
        let outcome = try mergeSlice(query, now: now) { row in
            guard row.isLive(now: now) else { return false }
            try visit(row)
            count += 1
            return true
        }
        return SliceSummary(rowCount: count, cursor: outcome.cursor, tombstonesScanned: outcome.tombstones)
    }

    /// A replica's answer for read repair: the same slice as `read`, but as reconciled row
    /// fragments with their timestamps and tombstones, plus the partition header, so a coordinator
    /// can compare replicas and repair the stale ones. `limit` counts live rows; dead rows met on
    /// the way are included.
    package func readRaw(_ query: SliceQuery) throws -> RawSlice {
        var rows: [Mutation.Row] = []
        let now = options.clock.nowSeconds()
        let outcome = try mergeSlice(query, now: now) { row in
            rows.append(Mutation.Row(clustering: row.clusteringBytes, fragment: row.fragment()))
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
    /// and row deletions applied, handing each to `emit` until it has accepted `limit` rows, or
    /// until an accepted row brings the bytes handed over (`SliceQuery.rowBytes`, dead rows
    /// included: a replica's answer carries them) to `byteLimit` (`emit` returns whether the row
    /// counts). Either stop leaves a cursor at the last accepted row.
    ///
    /// A row only one source holds, with no deletion from the partition header over it (nearly
    /// every row of an append-only table), goes to `emit` as it lies in the block or memtable:
    /// keys are compared in place and nothing is decoded or copied. A row several sources hold, or
    /// one a deletion reaches, is decoded, reconciled and re-encoded into a reused buffer first.
    func mergeSlice(_ query: SliceQuery, now: Int64, emit: (RowView) throws -> Bool) throws -> MergeOutcome {
        guard !query.partitionKey.isEmpty, query.partitionKey.count <= Int(UInt16.max) else {
            throw StorageError(
                .invalidArgument, "partition key must be 1...65535 bytes (got \(query.partitionKey.count))")
        }
        guard query.limit > 0 else { return MergeOutcome(header: PartitionHeader(), cursor: nil, tombstones: 0) }
        let prefix = InternalKey.partitionPrefix(table: query.table, partitionKey: query.partitionKey)
        let (memtables, candidates) = state.withLock { () -> ([Memtable], [SSTableReader]) in
            ([active] + frozen.reversed().map(\.memtable), tables)
        }
        let prefixHash = BloomFilter.hash(prefix)
        let ssts = candidates.filter { t in
            t.mayContainPartition(prefix, hash: prefixHash)
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
            if let v = try t.get(prefix, partitionHash: prefixHash), case .header(let h) = try decodeValue(v, from: t) {
                header = .merge(header, h)
            }
        }
        let headerIsEmpty = header.isEmpty

        // Locals, not `query`: the nested functions below would each capture (copy and retain)
        // the whole query.
        let reversed = query.reversed
        let limit = query.limit
        let (lo, hi) = query.clusteringRange()
        if let hi, compareBytes(lo, hi) >= 0 { return MergeOutcome(header: header, cursor: nil, tombstones: 0) }
        let lowKey = prefix + lo
        let highKey =
            hi.map { prefix + $0 }
            ?? (InternalKey.prefixSuccessor(prefix) ?? [UInt8](repeating: 0xFF, count: prefix.count + 1))

        var iterators: [ReadSource] = memtables.map { .memtable(MemtableIterator(memtable: $0)) }
        // Whether each source rests on an in-range key, re-checked once per move.
        var current: [Bool] = []
        current.reserveCapacity(iterators.count + ssts.count)
        func position(_ it: ReadSource) -> Bool {
            guard it.isValid else { return false }
            return it.withKey { k in
                lowKey.withUnsafeBytes { compareBytes(k, $0) >= 0 }
                    && highKey.withUnsafeBytes { compareBytes(k, $0) < 0 }
            }
        }
        /// `position` after a step of a source that was in range: moving in query order, it can
        /// only leave the range at the far end, so one bound is compared, not two.
        func stillInRange(_ it: ReadSource) -> Bool {
            guard it.isValid else { return false }
            return it.withKey { k in
                reversed
                    ? lowKey.withUnsafeBytes { compareBytes(k, $0) >= 0 }
                    : highKey.withUnsafeBytes { compareBytes(k, $0) < 0 }
            }
        }
        func open(_ it: ReadSource) throws {
            try it.seek(reversed ? highKey : lowKey, reversed: reversed)
            current.append(position(it))
        }
        for it in iterators { try open(it) }
        /// Compares source `i`'s key with source `j`'s, both in place.
        func compareSources(_ i: Int, _ j: Int) -> Int {
            iterators[i].withKey { a in iterators[j].withKey { b in compareBytes(a, b) } }
        }

        // SSTables open lazily, nearest edge first: a table whose clustering keys (all partitions'
        // bounds, from its statistics) all lie beyond the row the merge is at cannot hold a row
        // before it, so a page filled from newer tables never opens older ones — a newest-first
        // page of a chat reads the tables its messages are in, not every table.
        var waiting: [(edge: [UInt8], table: SSTableReader)] = []
        for t in ssts {
            let bound = reversed ? t.statistics.maxClustering : t.statistics.minClustering
            if bound.isEmpty && t.statistics.rowCount > 0 {
                // No bound recorded: open it now, as every table was opened before.
                let it = ReadSource.table(SSTableIterator(reader: t))
                iterators.append(it)
                readTableOpens.add(1, ordering: .relaxed)
                try open(it)
            } else {
                waiting.append((prefix + bound, t))
            }
        }
        // Nearest edge last.
        waiting.sort { reversed ? compareBytes($0.edge, $1.edge) < 0 : compareBytes($0.edge, $1.edge) > 0 }
        /// Opens the waiting tables that may hold a key at or before source `best`'s key in query
        /// order; when `best` is nil (no open source has a row left), the one with the nearest
        /// edge. Returns whether it opened any.
        func openTables(reaching best: Int?) throws -> Bool {
            var opened = false
            while let next = waiting.last {
                if let best {
                    let c = iterators[best].withKey { k in next.edge.withUnsafeBytes { compareBytes($0, k) } }
                    guard reversed ? c >= 0 : c <= 0 else { break }
                }
                waiting.removeLast()
                let it = ReadSource.table(SSTableIterator(reader: next.table))
                iterators.append(it)
                readTableOpens.add(1, ordering: .relaxed)
                try open(it)
                opened = true
                if best == nil { break }
            }
            return opened
        }

        var accepted = 0
        var tombstones = 0
        let byteLimit = query.byteLimit ?? .max
        var handedBytes = 0
        var full = false
        var cursor: [UInt8]? = nil
        var same: [Int] = []
        var scratch: [UInt8] = []
        /// Hands a reconciled, owned row to `emit` through a view of its re-encoding.
        func emitOwned(_ clustering: UnsafeRawBufferPointer, _ row: RowFragment) throws -> Bool {
            scratch.removeAll(keepingCapacity: true)
            EntryValue.encodeRow(row, into: &scratch)
            return try scratch.withUnsafeBytes { v in
                // Encoded just now from a row fragment, so it parses as a row.
                try emit(RowView(clustering: clustering, encoded: v, readTime: now)!)
            }
        }
        while true {
            var best = -1
            for i in current.indices where current[i] {
                if best < 0 {
                    best = i
                    continue
                }
                let c = compareSources(i, best)
                if reversed ? c > 0 : c < 0 { best = i }
            }
            // Tables that may hold a row before the best one join first; then pick again.
            if !waiting.isEmpty, try openTables(reaching: best < 0 ? nil : best) { continue }
            guard best >= 0 else { break }
            // Every source on the best key: `best` and any other holding a version of the same row.
            same.removeAll(keepingCapacity: true)
            same.append(best)
            for i in current.indices where current[i] && i != best && compareSources(i, best) == 0 { same.append(i) }

            let it = iterators[best]
            // nil: the key held a partition header, not a row.
            let counted: Bool? = try it.withKey { key in
                let clustering = UnsafeRawBufferPointer(rebasing: key[prefix.count...])
                let covering = headerIsEmpty ? nil : header.deletion(covering: clustering)
                let counted: Bool?
                if same.count == 1 && covering == nil {
                    counted = try it.withValue { v in
                        try annotate(it.table) { try RowView(clustering: clustering, encoded: v, readTime: now) }
                    }.map {
                        handedBytes += SliceQuery.rowBytes(clustering: clustering.count, encoded: $0.encoded.count)
                        return try emit($0)
                    }
                } else {
                    var fragment: RowFragment? = nil
                    for i in same {
                        if case .row(let f) = try decodeCurrent(iterators[i].iterator, from: iterators[i].table) {
                            fragment = fragment.map { RowFragment.merge($0, f) } ?? f
                        }
                    }
                    if var row = fragment {
                        if let d = covering {
                            row.applyDeletion(d)
                            if let own = row.deletion, own <= d { row.deletion = nil }
                        }
                        counted = try emitOwned(clustering, row)
                        handedBytes += SliceQuery.rowBytes(clustering: clustering.count, encoded: scratch.count)
                    } else {
                        counted = nil
                    }
                }
                if counted == true, accepted + 1 == limit || handedBytes >= byteLimit {
                    full = true
                    cursor = Array(clustering)
                }
                return counted
            }
            if counted == true {
                accepted += 1
                if full { break }
            } else if counted == false {
                tombstones += 1
            }
            for i in same {
                let source = i == best ? it : iterators[i]
                try source.step(reversed: reversed)
                current[i] = stillInRange(source)
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

    /// Inlined: as a call, its generic result (an optional `RowView`) was copied out by memmove,
    /// 9% of a latest-50 read's samples.
    @inline(__always)
    private func annotate<T>(_ table: SSTableReader?, _ body: () throws -> T) throws -> T {
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
