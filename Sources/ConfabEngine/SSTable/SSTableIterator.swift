/// A cursor over one SSTable. Holds the current decoded block, so `next()` and `prev()` within a
/// block touch no I/O and no lock; crossing a block boundary loads the neighbour through the
/// cache. A seek is one binary search over the in-memory index and one inside the block, so a
/// descending scan of 50 rows from a seek point touches one or two blocks.
///
/// On a thrown error the iterator becomes invalid; it never skips a damaged block.
final class SSTableIterator: EntryIterator {
    let reader: SSTableReader
    private var block: DataBlock? {
        didSet { if block == nil { (currentKey, currentValue) = (Self.empty, Self.empty) } }
    }
    private var blockIndex = 0
    private var entry = 0 {
        didSet { settle() }
    }
    /// The current entry's key and value, pointing into `block`, which keeps them alive; read per
    /// row by the merge with no retain or array access.
    private var currentKey = SSTableIterator.empty
    private var currentValue = SSTableIterator.empty
    private static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    init(reader: SSTableReader) {
        self.reader = reader
    }

    private func settle() {
        // A seek may set `entry` one past the block's end for a moment before moving on.
        guard let block, entry >= 0, entry < block.count else { return }
        currentKey = block.keyBytes(entry)
        currentValue = block.valueBytes(entry)
    }

    var isValid: Bool { block != nil }

    var key: [UInt8] { Array(currentKey) }

    var value: [UInt8] { Array(currentValue) }

    /// The key in place in the block. `body` must not move this iterator (the block it points
    /// into could be released).
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(currentKey)
    }

    /// The value in place in the block; as `withKey`.
    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(currentValue)
    }

    func decodedValue() throws -> EntryValue {
        guard block != nil else { throw StorageError(.invalidArgument, "iterator is not positioned") }
        return try EntryValue.decode(raw: currentValue)
    }

    /// Makes block `b` current, or invalidates the iterator on error.
    private func load(_ b: Int) throws -> DataBlock {
        block = nil
        let loaded = try reader.dataBlock(b)
        block = loaded
        blockIndex = b
        return loaded
    }

    private var blockCount: Int { reader.index.count }

    func seekToFirst() throws {
        block = nil
        guard blockCount > 0 else { return }
        _ = try load(0)
        entry = 0
    }

    func seekToLast() throws {
        block = nil
        guard blockCount > 0 else { return }
        entry = try load(blockCount - 1).count - 1
    }

    func seek(_ target: [UInt8]) throws {
        block = nil
        let b = reader.index.lowerBound(target)
        guard b < blockCount else { return }
        let loaded = try load(b)
        entry = loaded.lowerBound(target)
        if entry == loaded.count {
            // Every entry of the block is below target (target fell between its last key and its
            // separator): the answer is the next block's first entry.
            try moveToBlock(b + 1, atEnd: false)
        }
    }

    func seekBefore(_ target: [UInt8]) throws {
        block = nil
        let b = reader.index.lowerBound(target)
        guard b < blockCount else {
            try seekToLast()
            return
        }
        let loaded = try load(b)
        let i = loaded.lowerBound(target)
        if i > 0 {
            entry = i - 1
        } else {
            try moveToBlock(b - 1, atEnd: true)
        }
    }

    func next() throws {
        guard let current = block else { return }
        if entry + 1 < current.count {
            entry += 1
        } else {
            try moveToBlock(blockIndex + 1, atEnd: false)
        }
    }

    func prev() throws {
        guard block != nil else { return }
        if entry > 0 {
            entry -= 1
        } else {
            try moveToBlock(blockIndex - 1, atEnd: true)
        }
    }

    /// Positions at the first (or last) entry of block `b`, or invalidates when `b` is out of range.
    private func moveToBlock(_ b: Int, atEnd: Bool) throws {
        guard b >= 0, b < blockCount else {
            block = nil
            return
        }
        let loaded = try load(b)
        entry = atEnd ? loaded.count - 1 : 0
    }
}
