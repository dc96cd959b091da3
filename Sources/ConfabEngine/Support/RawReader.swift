/// `ByteReader` over borrowed memory (a block in the cache, a memtable value copied into a reused
/// buffer): the same bounds checks and `.corruption` errors, without an array to index, so a row
/// can be read in place with no allocation.
struct RawReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    /// Named in corruption errors.
    let context: StaticString

    init(_ bytes: UnsafeRawBufferPointer, context: StaticString) {
        self.bytes = bytes
        self.position = 0
        self.context = context
    }

    var isAtEnd: Bool { position >= bytes.count }
    var remaining: Int { bytes.count - position }

    func fail(_ what: String) -> StorageError {
        StorageError(.corruption, "\(context): \(what) at byte \(position)", offset: position)
    }

    mutating func readByte() throws -> UInt8 {
        guard position < bytes.count else { throw fail("unexpected end reading a byte") }
        defer { position += 1 }
        return bytes[position]
    }

    @inline(__always)
    mutating func readVarint() throws -> UInt64 {
        // One-byte varints (small counts, flags, lengths under 128) are most of them.
        if position < bytes.count, bytes[position] < 0x80 {
            defer { position += 1 }
            return UInt64(bytes[position])
        }
        return try readLongVarint()
    }

    private mutating func readLongVarint() throws -> UInt64 {
        // With ten bytes left no byte of a well-formed varint can be past the end, so the bytes
        // are read straight from memory: timestamps are 8-byte varints, several per row, and the
        // bounds-checked loop below was 10% of a latest-50 read's samples (perf, storage bench).
        if bytes.count - position >= 10, let base = bytes.baseAddress {
            let p = base + position
            var result: UInt64 = 0
            for i in 0..<9 {
                let b = p.load(fromByteOffset: i, as: UInt8.self)
                result |= UInt64(b & 0x7f) << UInt64(7 * i)
                if b < 0x80 {
                    self.position += i + 1
                    return result
                }
            }
            let last = p.load(fromByteOffset: 9, as: UInt8.self)
            if last <= 1 {
                self.position += 10
                return result | UInt64(last) << 63
            }
        }
        let (position, bytes) = (self.position, self.bytes)
        let r = decodeVarint { i in position + i < bytes.count ? bytes[position + i] : nil }
        self.position += r.length
        if let failure = r.failure { throw fail(failure) }
        return r.value
    }

    mutating func readVarintInt(max: Int = Int(Int32.max)) throws -> Int {
        let v = try readVarint()
        guard v <= UInt64(max) else { throw fail("length \(v) exceeds limit \(max)") }
        return Int(v)
    }

    mutating func readSignedVarint() throws -> Int64 {
        let u = try readVarint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    mutating func readBytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw fail("unexpected end reading \(count) bytes") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    mutating func readLengthPrefixed(max: Int = 64 << 20) throws -> UnsafeRawBufferPointer {
        try readBytes(try readVarintInt(max: max))
    }
}
