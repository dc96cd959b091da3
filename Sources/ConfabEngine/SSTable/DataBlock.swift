/// A data block decoded once when loaded: keys rebuilt into one buffer and value ranges into the
/// decompressed contents, so seeks are binary searches and `prev()` is an index decrement.
/// Immutable after decoding, so one instance is shared by the block cache and many iterators.
///
/// Everything lives in one allocation the block owns (contents, then keys, then three offsets per
/// entry), so a key or value is a pointer into it, valid as long as the block is referenced: an
/// iterator reaches its current entry with no array access, retain or copy (retain/release was a
/// quarter of a latest-50 read's samples when these were arrays).
final class DataBlock: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer
    private let contentsCount: Int
    /// Per entry: key end (relative to the keys), value start, value end (in the contents).
    private let offsets: UnsafeMutablePointer<Int>
    let count: Int

    /// Memory charged to the block cache.
    var charge: Int { storage.count + count * 24 + 160 }

    deinit {
        storage.deallocate()
        offsets.deallocate()
    }

    @inline(__always) private var keys: UnsafeRawPointer { UnsafeRawPointer(storage.baseAddress! + contentsCount) }

    @inline(__always) func keyRange(_ i: Int) -> Range<Int> {
        (i == 0 ? 0 : offsets[3 * (i - 1)])..<offsets[3 * i]
    }

    /// Key `i` in place; valid while this block is referenced.
    @inline(__always) func keyBytes(_ i: Int) -> UnsafeRawBufferPointer {
        let r = keyRange(i)
        return UnsafeRawBufferPointer(start: keys + r.lowerBound, count: r.count)
    }

    /// Value `i` in place; valid while this block is referenced.
    @inline(__always) func valueBytes(_ i: Int) -> UnsafeRawBufferPointer {
        let start = offsets[3 * i + 1]
        return UnsafeRawBufferPointer(start: storage.baseAddress! + start, count: offsets[3 * i + 2] - start)
    }

    func key(_ i: Int) -> [UInt8] { Array(keyBytes(i)) }
    func value(_ i: Int) -> [UInt8] { Array(valueBytes(i)) }

    /// Index of the first key >= target (`count` if none).
    func lowerBound(_ target: [UInt8]) -> Int {
        target.withUnsafeBytes { t in
            var lo = 0
            var hi = count
            while lo < hi {
                let mid = (lo + hi) / 2
                if compareBytes(keyBytes(mid), t) < 0 { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
    }

    /// Decodes and checks contents written by `BlockBuilder`: every length in bounds, keys strictly
    /// increasing, at least one entry, the stated count. Throws `.corruption` naming `path` and the
    /// block's offset.
    init(contents: [UInt8], path: String, offset: Int) throws {
        func fail(_ what: String) -> StorageError {
            StorageError.corruption("data block: \(what)", path: path, offset: offset)
        }
        guard contents.count >= 4 else { throw fail("shorter than its entry count") }
        let bodyEnd = contents.count - 4
        let stated = contents.withUnsafeBytes { Int(UInt32.loadLE($0, at: bodyEnd)) }
        guard stated > 0, stated <= bodyEnd / 3 + 1 else { throw fail("implausible entry count \(stated)") }
        var keyEnds: [Int] = []
        var valueStarts: [Int] = []
        var valueEnds: [Int] = []
        var suffixStarts: [Int] = []
        keyEnds.reserveCapacity(stated)
        valueStarts.reserveCapacity(stated)
        valueEnds.reserveCapacity(stated)
        suffixStarts.reserveCapacity(stated)
        // First pass: the entry headers, bounds and the total key length, so the keys can be
        // rebuilt into one buffer of the right size with no per-entry array (a cold read loads
        // a block or two, and building a key array per entry was most of the load).
        var total = 0
        var previousLength = 0
        var r = ByteReader(contents, range: 0..<bodyEnd, context: "data block")
        do {
            while !r.isAtEnd {
                let shared = try r.readVarintInt()
                let unshared = try r.readVarintInt()
                let valueLength = try r.readVarintInt()
                guard shared <= previousLength, !(keyEnds.isEmpty && shared != 0) else {
                    throw fail("entry \(keyEnds.count) shares \(shared) bytes with a \(previousLength)-byte key")
                }
                suffixStarts.append(r.position)
                _ = try r.readBytes(unshared)
                let valueStart = r.position
                _ = try r.readBytes(valueLength)
                previousLength = shared + unshared
                total += previousLength
                keyEnds.append(total)
                valueStarts.append(valueStart)
                valueEnds.append(valueStart + valueLength)
            }
        } catch let e as StorageError where e.path == nil {
            throw fail(e.message)
        }
        guard keyEnds.count == stated else { throw fail("holds \(keyEnds.count) entries, trailer says \(stated)") }
        // Second pass: each key is the previous key's first `shared` bytes plus its suffix.
        let n = keyEnds.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, contents.count + total), alignment: 16)
        contents.withUnsafeBytes { storage.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let out = storage.baseAddress! + contents.count
        var outOfOrder: Int? = nil
        var start = 0
        var previousStart = 0
        for i in 0..<n {
            let end = keyEnds[i]
            let suffix = suffixStarts[i]
            let unshared = valueStarts[i] - suffix
            let shared = end - start - unshared
            if shared > 0 { (out + start).copyMemory(from: out + previousStart, byteCount: shared) }
            if unshared > 0 {
                (out + start + shared).copyMemory(from: storage.baseAddress! + suffix, byteCount: unshared)
            }
            if i > 0, outOfOrder == nil {
                let previous = UnsafeRawBufferPointer(start: out + previousStart, count: start - previousStart)
                let current = UnsafeRawBufferPointer(start: out + start, count: end - start)
                if compareBytes(previous, current) >= 0 { outOfOrder = i }
            }
            previousStart = start
            start = end
        }
        if let i = outOfOrder {
            storage.deallocate()
            throw fail("keys out of order at entry \(i)")
        }
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: 3 * n)
        for i in 0..<n {
            offsets[3 * i] = keyEnds[i]
            offsets[3 * i + 1] = valueStarts[i]
            offsets[3 * i + 2] = valueEnds[i]
        }
        self.storage = storage
        self.contentsCount = contents.count
        self.offsets = offsets
        self.count = n
    }
}
