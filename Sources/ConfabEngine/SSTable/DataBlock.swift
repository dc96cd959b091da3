/// A data block decoded once when loaded: keys rebuilt into one buffer and value ranges into the
/// decompressed contents, so seeks are binary searches and `prev()` is an index decrement.
/// Immutable after decoding, so one instance is shared by the block cache and many iterators.
final class DataBlock: Sendable {
    /// The decompressed block contents (values are read from here).
    let contents: [UInt8]
    /// All keys, concatenated.
    let keyBytes: [UInt8]
    /// End of key `i` in `keyBytes` (key `i` starts where key `i - 1` ends).
    let keyEnds: [Int]
    let valueStarts: [Int]
    let valueEnds: [Int]

    var count: Int { keyEnds.count }

    /// Memory charged to the block cache.
    var charge: Int { contents.count + keyBytes.count + keyEnds.count * 24 + 160 }

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
        var outOfOrder: Int? = nil
        let keyBytes = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            contents.withUnsafeBytes { c in
                var start = 0
                var previousStart = 0
                for i in 0..<keyEnds.count {
                    let end = keyEnds[i]
                    let suffix = suffixStarts[i]
                    let unshared = valueStarts[i] - suffix
                    let shared = end - start - unshared
                    if shared > 0 {
                        (out.baseAddress! + start).update(from: out.baseAddress! + previousStart, count: shared)
                    }
                    if unshared > 0 {
                        UnsafeMutableRawPointer(out.baseAddress! + start + shared).copyMemory(
                            from: c.baseAddress! + suffix, byteCount: unshared)
                    }
                    if i > 0, outOfOrder == nil {
                        let previous = UnsafeRawBufferPointer(
                            start: out.baseAddress! + previousStart, count: start - previousStart)
                        let current = UnsafeRawBufferPointer(start: out.baseAddress! + start, count: end - start)
                        if compareBytes(previous, current) >= 0 { outOfOrder = i }
                    }
                    previousStart = start
                    start = end
                }
            }
            initialized = total
        }
        if let i = outOfOrder { throw fail("keys out of order at entry \(i)") }
        self.contents = contents
        self.keyBytes = keyBytes
        self.keyEnds = keyEnds
        self.valueStarts = valueStarts
        self.valueEnds = valueEnds
    }

    @inline(__always) func keyRange(_ i: Int) -> Range<Int> {
        (i == 0 ? 0 : keyEnds[i - 1])..<keyEnds[i]
    }

    func key(_ i: Int) -> [UInt8] { Array(keyBytes[keyRange(i)]) }
    func value(_ i: Int) -> [UInt8] { Array(contents[valueStarts[i]..<valueEnds[i]]) }

    /// Index of the first key >= target (`count` if none).
    func lowerBound(_ target: [UInt8]) -> Int {
        keyBytes.withUnsafeBytes { keys in
            target.withUnsafeBytes { t in
                var lo = 0
                var hi = count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    let r = keyRange(mid)
                    if compareBytes(UnsafeRawBufferPointer(rebasing: keys[r]), t) < 0 { lo = mid + 1 } else { hi = mid }
                }
                return lo
            }
        }
    }
}
