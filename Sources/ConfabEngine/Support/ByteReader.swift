/// A bounds-checked cursor over encoded bytes. Every read that would run past the end throws
/// `.corruption`, so a damaged file is reported, never a crash.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int
    /// Named in corruption errors.
    var context: String

    init(_ bytes: [UInt8], context: String = "record") {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count
        self.context = context
    }

    init(_ bytes: [UInt8], range: Range<Int>, context: String = "record") {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.context = context
    }

    var isAtEnd: Bool { position >= end }
    var remaining: Int { end - position }

    func fail(_ what: String) -> StorageError {
        StorageError(.corruption, "\(context): \(what) at byte \(position)", offset: position)
    }

    mutating func readByte() throws -> UInt8 {
        guard position < end else { throw fail("unexpected end reading a byte") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readVarint() throws -> UInt64 {
        let (position, end, bytes) = (self.position, self.end, self.bytes)
        let r = decodeVarint { i in position + i < end ? bytes[position + i] : nil }
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

    mutating func readLE32() throws -> UInt32 {
        guard remaining >= 4 else { throw fail("unexpected end reading 4 bytes") }
        defer { position += 4 }
        return bytes.withUnsafeBytes { UInt32.loadLE($0, at: position) }
    }

    mutating func readLE64() throws -> UInt64 {
        guard remaining >= 8 else { throw fail("unexpected end reading 8 bytes") }
        defer { position += 8 }
        return bytes.withUnsafeBytes { UInt64.loadLE($0, at: position) }
    }

    mutating func readBE16() throws -> UInt16 {
        guard remaining >= 2 else { throw fail("unexpected end reading 2 bytes") }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    mutating func readBytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw fail("unexpected end reading \(count) bytes") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func readLengthPrefixed(max: Int = 64 << 20) throws -> ArraySlice<UInt8> {
        let n = try readVarintInt(max: max)
        return try readBytes(n)
    }
}

/// The varint (LEB128, at most 10 bytes) loop `ByteReader` and `RawReader` share. `byte(i)` is the
/// i-th byte from where the varint starts, nil past the end. `length` is the bytes consumed, also
/// when it fails, so an error names the same position as before.
@inline(__always)
func decodeVarint(_ byte: (Int) -> UInt8?) -> (value: UInt64, length: Int, failure: String?) {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    var i = 0
    while true {
        guard let b = byte(i) else { return (0, i, "unexpected end in a varint") }
        i += 1
        if shift == 63 && b > 1 { return (0, i, "varint overflows 64 bits") }
        result |= UInt64(b & 0x7f) << shift
        if b < 0x80 { return (result, i, nil) }
        shift += 7
        if shift > 63 { return (0, i, "varint longer than 10 bytes") }
    }
}
