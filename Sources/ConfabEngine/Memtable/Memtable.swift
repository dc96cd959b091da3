import Foundation

/// The in-memory, sorted, mutable part of the LSM tree: every acknowledged write since the last
/// flush. Readers run concurrently with each other; a writer holds the lock only for the insert.
/// A full memtable is frozen (no more writes) and flushed to an SSTable in the background.
final class Memtable: @unchecked Sendable {
    private let lock = ReadWriteLock()
    private var list: SkipList
    private var _minTimestamp = Int64.max
    private var _maxTimestamp = Int64.min
    /// Partition header entries written here (partition and range deletions; rare). A read looks
    /// for its partition's header only when there is one: the lookup is a skip-list search from
    /// the top whose first steps miss the cache, and was ~7% of a read thread's samples (ring
    /// bench) in memtables that held no header at all.
    private var headerWrites = 0
    /// The node of the last row written to each partition, keyed by partition prefix: a chat's
    /// next message sorts right after it, so the skip list can link it there without a search
    /// (`SkipList.upsert(key:value:after:merge:)`). Only a hint: a wrong one costs two
    /// comparisons. Cleared when it reaches `maxHints` partitions, so it stays small (counted in
    /// `memoryBytes`).
    private var lastRow: [PartitionPrefix: Int32] = [:]
    static let maxHints = 16_384

    /// A partition prefix hashed as one byte string (`[UInt8]` hashes byte by byte).
    private struct PartitionPrefix: Hashable {
        let bytes: [UInt8]
        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    /// Writes whose WAL records were appended while this memtable was active but which are not
    /// applied yet (they wait for the fdatasync that makes them durable). Guarded by `pending`.
    private var _pendingWrites = 0
    private let pending = BlockingMutex()
    private let drained: BlockingCondition
    /// Monotonic id, for logs and tests.
    let id: UInt64

    /// `capacityBytes`: the size at which the engine freezes it (`EngineOptions.memtableBytes`),
    /// reserved up front.
    init(id: UInt64, capacityBytes: Int = 1 << 20) {
        self.id = id
        self.list = SkipList(capacityBytes: capacityBytes)
        self.drained = BlockingCondition(pending)
    }

    /// Registers a write that will be applied here once its WAL record is durable (or abandoned
    /// when it is not). Its smallest timestamp counts at once: compaction must not purge a
    /// tombstone that could shadow data about to land here.
    func beginWrite(minTimestamp: Int64) {
        pending.withLock { _pendingWrites += 1 }
        lock.withWriteLock { _minTimestamp = min(_minTimestamp, minTimestamp) }
    }

    /// Ends a write registered with `beginWrite`, applied or abandoned.
    func endWrite() {
        pending.withLock {
            _pendingWrites -= 1
            if _pendingWrites == 0 { drained.broadcast() }
        }
    }

    var pendingWrites: Int { pending.withLock { _pendingWrites } }

    /// Blocks until every registered write is applied or abandoned. A frozen memtable gets no new
    /// registrations, and its writes are already synced (freezing rolls the WAL), so this is short.
    func waitForPendingWrites() {
        pending.withLock {
            while _pendingWrites > 0 { drained.wait() }
        }
    }

    /// The skip list, and 128 bytes per partition hint: an estimate (the prefix array's heap
    /// block and its dictionary slot), not a measurement.
    var memoryBytes: Int { lock.withReadLock { list.memoryBytes + lastRow.count * 128 } }
    var entryCount: Int { lock.withReadLock { list.count } }
    /// Rows linked after their partition's last row without a search (see `lastRow`).
    var hintedLinks: Int { lock.withReadLock { list.hintedLinks } }
    var isEmpty: Bool { entryCount == 0 }
    /// Smallest write timestamp held: compaction may purge a tombstone only if no memtable holds
    /// older data it could be shadowing.
    var minTimestamp: Int64 { lock.withReadLock { _minTimestamp } }

    /// Applies one mutation atomically with respect to readers.
    func apply(_ m: Mutation) {
        let encoded = m.encodedWithValueRanges()
        apply(m, payload: encoded.bytes, header: encoded.header, rows: encoded.rows)
    }

    /// The smallest timestamp anywhere in `m`.
    static func minTimestamp(of m: Mutation) -> Int64 {
        var lo = Int64.max
        if let d = m.header.deletion { lo = min(lo, d.timestamp) }
        for rt in m.header.rangeTombstones { lo = min(lo, rt.deletion.timestamp) }
        for row in m.rows { lo = min(lo, row.fragment.minTimestamp) }
        return lo
    }

    /// Applies a mutation whose entry values are already encoded inside `payload` (its WAL record).
    func apply(_ m: Mutation, payload: [UInt8], header: Range<Int>?, rows: [Range<Int>]) {
        let prefix = InternalKey.partitionPrefix(table: m.table, partitionKey: m.partitionKey)
        var lo = Int64.max
        var hi = Int64.min
        if !m.header.isEmpty {
            if let d = m.header.deletion {
                lo = min(lo, d.timestamp)
                hi = max(hi, d.timestamp)
            }
            for rt in m.header.rangeTombstones {
                lo = min(lo, rt.deletion.timestamp)
                hi = max(hi, rt.deletion.timestamp)
            }
        }
        for row in m.rows {
            lo = min(lo, row.fragment.minTimestamp)
            hi = max(hi, row.fragment.maxTimestamp)
        }
        var key = prefix
        lock.withWriteLock {
            if let header {
                list.upsert(key: prefix, value: payload[header], after: 0, merge: Self.mergeValues)
                headerWrites += 1
            }
            if !m.rows.isEmpty {
                // One hash per mutation: a known partition's hint is replaced through its slot.
                let partition = PartitionPrefix(bytes: prefix)
                let slot = lastRow.index(forKey: partition)
                var hint = slot.map { Int(lastRow.values[$0]) } ?? 0
                for (row, range) in zip(m.rows, rows) {
                    key.removeSubrange(prefix.count...)
                    key.append(contentsOf: row.clustering)
                    hint = list.upsert(key: key, value: payload[range], after: hint, merge: Self.mergeValues)
                }
                if let slot {
                    lastRow.values[slot] = Int32(hint)
                } else {
                    if lastRow.count >= Self.maxHints { lastRow.removeAll(keepingCapacity: true) }
                    lastRow[partition] = Int32(hint)
                }
            }
            _minTimestamp = min(_minTimestamp, lo)
            _maxTimestamp = max(_maxTimestamp, hi)
        }
    }

    static func mergeValues(_ old: [UInt8], _ new: [UInt8]) -> [UInt8] {
        // Both were encoded by this process from validated mutations, so they decode.
        guard let a = try? EntryValue.decode(old), let b = try? EntryValue.decode(new) else { return new }
        return EntryValue.merge(a, b).encoded()
    }

    func get(_ key: [UInt8]) -> [UInt8]? {
        lock.withReadLock { list.find(key).map { list.value($0) } }
    }

    /// The partition header stored under `prefix`, if this memtable holds any header at all.
    func header(_ prefix: [UInt8]) -> [UInt8]? {
        lock.withReadLock { headerWrites == 0 ? nil : list.find(prefix).map { list.value($0) } }
    }

    func makeIterator() -> any EntryIterator { MemtableIterator(memtable: self) }

    /// Every entry in key order, read in place (`SkipList.forEachEntry`) under the read lock, held
    /// throughout. Only for a frozen memtable whose pending writes are applied
    /// (`waitForPendingWrites`): it has no writers left, so holding the lock for a whole flush
    /// keeps no one waiting, and readers share it.
    func forEachEntry(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try lock.withReadLock { try list.forEachEntry(body) }
    }

    // Iterator support: each step takes the read lock briefly; node indices never move.
    func withList<T>(_ body: (borrowing SkipList) -> T) -> T {
        lock.withReadLock { body(list) }
    }
}

/// Walks a memtable; valid across concurrent inserts (it may or may not see entries inserted after
/// it was positioned, and never sees a torn one).
final class MemtableIterator: EntryIterator {
    private let memtable: Memtable
    private var node: Int?
    private var keyBuffer: [UInt8] = []
    private var valueBuffer: [UInt8] = []

    init(memtable: Memtable) { self.memtable = memtable }

    var key: [UInt8] { keyBuffer }

    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try keyBuffer.withUnsafeBytes(body)
    }

    /// The value is copied into a buffer this iterator reuses (under the read lock, so never torn)
    /// and `body` runs outside the lock.
    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let n = node { memtable.withList { $0.copyValue(n, into: &valueBuffer) } } else { valueBuffer.removeAll() }
        return try valueBuffer.withUnsafeBytes(body)
    }

    var isValid: Bool { node != nil }

    /// Copied when asked for, not on every step: a merge steps over many entries and decodes
    /// only the ones it keeps (`decodedValue`, straight from the arena).
    var value: [UInt8] {
        guard let n = node else { return [] }
        return memtable.withList { $0.value(n) }
    }

    func decodedValue() throws -> EntryValue {
        guard let n = node else { throw StorageError(.invalidArgument, "iterator is not positioned") }
        return try memtable.withList { list in Result { try list.decodeValue(n) } }.get()
    }

    private func load(_ n: Int?, _ list: borrowing SkipList) {
        node = n
        if let n { list.copyKey(n, into: &keyBuffer) }
    }

    func seekToFirst() { memtable.withList { load($0.first, $0) } }
    func seekToLast() { memtable.withList { load($0.last, $0) } }
    func seek(_ target: [UInt8]) { memtable.withList { load($0.lowerBound(target), $0) } }
    func seekBefore(_ target: [UInt8]) { memtable.withList { load($0.lastLess(target), $0) } }

    func next() {
        guard let n = node else { return }
        memtable.withList { load($0.successor(n), $0) }
    }

    func prev() {
        guard let n = node else { return }
        memtable.withList { load($0.predecessor(n), $0) }
    }
}
