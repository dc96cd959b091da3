/// The in-memory index of an SSTable: for every data block, a separator key S with
/// `last key of the block <= S < first key of the next block`, and the block's handle.
///
/// Binary search over the separators finds the one block that can hold any key, so seeking to
/// (partition P, clustering C) costs O(log blocks) whatever the size of P: a partition of ten
/// million rows simply spans many consecutive index entries. The same search finds partition
/// headers, so no separate partition index is kept (see docs/sstable_format.md).
///
/// Encoded contents (inside a `StoredBlock`):
///
///     count    varint number of entries
///     entry*   varint shared | varint unshared | separator suffix | varint offset | varint size
struct BlockIndex: Sendable {
    private(set) var keyBytes: [UInt8] = []
    private(set) var keyEnds: [Int] = []
    private(set) var handles: [BlockHandle] = []

    var count: Int { handles.count }

    init() {}

    mutating func append(separator: [UInt8], handle: BlockHandle) {
        keyBytes.append(contentsOf: separator)
        keyEnds.append(keyBytes.count)
        handles.append(handle)
    }

    func keyRange(_ i: Int) -> Range<Int> { (i == 0 ? 0 : keyEnds[i - 1])..<keyEnds[i] }
    func separator(_ i: Int) -> [UInt8] { Array(keyBytes[keyRange(i)]) }

    /// The first block whose separator is >= target: the only block that can hold the first entry
    /// >= target (or, when all its entries are smaller, that entry is the next block's first).
    /// `count` when target is past every block.
    func lowerBound(_ target: [UInt8]) -> Int {
        keyBytes.withUnsafeBytes { keys in
            target.withUnsafeBytes { t in
                var lo = 0
                var hi = count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if compareBytes(UnsafeRawBufferPointer(rebasing: keys[keyRange(mid)]), t) < 0 {
                        lo = mid + 1
                    } else {
                        hi = mid
                    }
                }
                return lo
            }
        }
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(keyBytes.count + count * 8 + 8)
        out.appendVarint(count)
        var previous: [UInt8] = []
        for i in 0..<count {
            let sep = separator(i)
            let shared = commonPrefixLength(previous, sep)
            out.appendVarint(shared)
            out.appendVarint(sep.count - shared)
            out.append(contentsOf: sep[shared...])
            out.appendVarint(handles[i].offset)
            out.appendVarint(UInt64(handles[i].size))
            previous = sep
        }
        return out
    }

    /// Decodes and checks the index: separators strictly increasing, and data blocks tiling
    /// `0..<dataEnd` with no gap or overlap (so every data byte is covered by a checked block).
    init(decoding contents: [UInt8], dataEnd: UInt64, path: String, offset: Int) throws {
        func fail(_ what: String) -> StorageError {
            StorageError.corruption("index block: \(what)", path: path, offset: offset)
        }
        var r = ByteReader(contents, context: "index block")
        do {
            let n = try r.readVarintInt(max: contents.count)
            keyEnds.reserveCapacity(n)
            handles.reserveCapacity(n)
            var previous: [UInt8] = []
            var expectedOffset: UInt64 = 0
            for i in 0..<n {
                let shared = try r.readVarintInt()
                let unshared = try r.readVarintInt()
                guard shared <= previous.count else {
                    throw fail("entry \(i) shares \(shared) bytes with a \(previous.count)-byte key")
                }
                var sep = previous
                sep.removeLast(previous.count - shared)
                sep.append(contentsOf: try r.readBytes(unshared))
                if i > 0, compareBytes(previous, sep) >= 0 { throw fail("separators out of order at entry \(i)") }
                let blockOffset = try r.readVarint()
                let size = try r.readVarint()
                guard size <= UInt64(StoredBlock.maxContentsBytes) else {
                    throw fail("block \(i) size \(size) too large")
                }
                let handle = BlockHandle(offset: blockOffset, size: UInt32(size))
                guard handle.offset == expectedOffset, handle.end <= dataEnd else {
                    throw fail(
                        "block \(i) at \(blockOffset) (\(size) bytes) does not follow the previous block ending at \(expectedOffset)"
                    )
                }
                expectedOffset = handle.end
                append(separator: sep, handle: handle)
                previous = sep
            }
            guard r.isAtEnd else { throw fail("\(r.remaining) trailing bytes") }
            guard expectedOffset == dataEnd else {
                throw fail("data blocks end at \(expectedOffset), index starts at \(dataEnd)")
            }
        } catch let e as StorageError where e.path == nil {
            throw fail(e.message)
        }
    }
}

/// A short key S with a <= S < b (LevelDB's FindShortestSeparator), given a < b: shortens index
/// entries when long partition keys or clustering keys differ early.
func shortestSeparator(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    let i = commonPrefixLength(a, b)
    guard i < a.count, i < b.count else { return a }
    let x = a[i]
    guard x < 0xFF, x + 1 < b[i] else { return a }
    var s = Array(a[0...i])
    s[i] = x + 1
    return s
}
