/// Builds the contents of one data block: entries whose keys are prefix-compressed against the
/// previous key in the block, then the entry count.
///
///     entry*   varint shared | varint unshared | varint value length | key suffix | value
///     count    u32 LE number of entries
///
/// There are no restart points: a block is always decoded whole when loaded (and cached decoded),
/// so the extra bytes LevelDB spends to binary-search encoded blocks would buy nothing here.
struct BlockBuilder {
    private(set) var buffer: [UInt8] = []
    private var lastKey: [UInt8] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    /// Size of the contents if finished now.
    var estimatedSize: Int { buffer.count + 4 }

    mutating func add(key: [UInt8], value: [UInt8]) {
        key.withUnsafeBytes { k in value.withUnsafeBytes { v in add(key: k, value: v) } }
    }

    /// Appends an entry from borrowed bytes (a flush passes the memtable's, with no copy per entry).
    mutating func add(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let shared = count == 0 ? 0 : lastKey.withUnsafeBytes { commonPrefixLength($0, key) }
        buffer.appendVarint(shared)
        buffer.appendVarint(key.count - shared)
        buffer.appendVarint(value.count)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: key[shared...]))
        buffer.append(contentsOf: value)
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        count += 1
    }

    /// The finished contents; the builder is empty again afterwards.
    mutating func finish() -> [UInt8] {
        var out = buffer
        out.appendLE32(UInt32(count))
        buffer = []
        buffer.reserveCapacity(out.count)
        lastKey = []
        count = 0
        return out
    }
}

func commonPrefixLength(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { x in b.withUnsafeBytes { y in commonPrefixLength(x, y) } }
}

func commonPrefixLength(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    var i = 0
    while i < n && a[i] == b[i] { i += 1 }
    return i
}
