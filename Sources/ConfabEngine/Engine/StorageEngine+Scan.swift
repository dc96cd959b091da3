extension StorageEngine {
    /// One entry of a token-range scan: a partition's header or one of its rows, reconciled across
    /// every source but otherwise raw (tombstones and shadowed-by-header rows included), as repair
    /// and streaming need them.
    package struct ScannedEntry: Sendable, Hashable {
        package var partitionKey: [UInt8]
        package var token: Int64
        /// Empty for the partition header.
        package var clustering: [UInt8]
        package var value: EntryValue
    }

    /// Visits every entry of `table` whose partition token lies in `tokens`, in token order (then
    /// partition key, then clustering), until `body` returns false. Ring ranges that wrap around
    /// are passed as two calls. Sees a consistent snapshot of the sources taken at the start.
    ///
    /// Used to build Merkle trees for repair and to stream ranges on bootstrap and decommission;
    /// memory stays constant whatever the partition sizes.
    package func scan(table: TableID, tokens: ClosedRange<Int64>, _ body: (ScannedEntry) throws -> Bool) throws {
        var lowKey: [UInt8] = []
        lowKey.appendBE32(table)
        lowKey.appendBE64(UInt64(bitPattern: tokens.lowerBound) ^ (1 << 63))
        var highKey: [UInt8] = []
        if tokens.upperBound == .max {
            highKey.appendBE32(table &+ 1)
            if table == .max { highKey = [UInt8](repeating: 0xFF, count: 13) }
        } else {
            highKey.appendBE32(table)
            highKey.appendBE64(UInt64(bitPattern: tokens.upperBound + 1) ^ (1 << 63))
        }
        let (memtables, ssts) = state.withLock { () -> ([Memtable], [SSTableReader]) in
            ([active] + frozen.reversed().map(\.memtable), tables)
        }
        let iterators: [any EntryIterator] =
            memtables.map { $0.makeIterator() }
            + ssts.filter { t in
                compareBytes(t.statistics.maxKey, lowKey) >= 0 && compareBytes(t.statistics.minKey, highKey) < 0
            }.map { $0.makeIterator() }
        var current: [[UInt8]?] = []
        func position(_ it: any EntryIterator) -> [UInt8]? {
            guard it.isValid else { return nil }
            let k = it.key
            return compareBytes(k, highKey) < 0 ? k : nil
        }
        for it in iterators {
            try it.seek(lowKey)
            current.append(position(it))
        }
        while true {
            var best = -1
            for i in current.indices {
                guard let k = current[i] else { continue }
                if best < 0 || compareBytes(k, current[best]!) < 0 { best = i }
            }
            guard best >= 0, let key = current[best] else { return }
            var merged: EntryValue? = nil
            for i in current.indices where current[i] != nil && (i == best || current[i]! == key) {
                let v = try iterators[i].decodedValue()
                merged = merged.map { EntryValue.merge($0, v) } ?? v
                try iterators[i].next()
                current[i] = position(iterators[i])
            }
            guard let value = merged, let parts = InternalKey.decode(key) else {
                throw StorageError(.corruption, "malformed key of \(key.count) bytes in a range scan")
            }
            let entry = ScannedEntry(
                partitionKey: parts.partitionKey, token: parts.token, clustering: parts.clustering, value: value)
            if try !body(entry) { return }
        }
    }
}
