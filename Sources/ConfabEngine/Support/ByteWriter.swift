/// Appending encoders for the engine's on-disk formats. All fixed-width integers are little-endian
/// except where a format page in docs/ says big-endian (keys, which must sort with memcmp).
extension Array where Element == UInt8 {
    @inlinable
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    @inlinable
    mutating func appendVarint(_ value: Int) { appendVarint(UInt64(value)) }

    /// Zig-zag signed varint (small magnitudes stay small).
    @inlinable
    mutating func appendSignedVarint(_ value: Int64) {
        appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inlinable
    mutating func appendLE32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 24))
    }

    @inlinable
    mutating func appendLE64(_ value: UInt64) {
        appendLE32(UInt32(truncatingIfNeeded: value))
        appendLE32(UInt32(truncatingIfNeeded: value >> 32))
    }

    @inlinable
    mutating func appendBE16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable
    mutating func appendBE32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable
    mutating func appendBE64(_ value: UInt64) {
        appendBE32(UInt32(truncatingIfNeeded: value >> 32))
        appendBE32(UInt32(truncatingIfNeeded: value))
    }

    /// A varint length followed by the bytes.
    @inlinable
    mutating func appendLengthPrefixed(_ bytes: some Collection<UInt8>) {
        appendVarint(bytes.count)
        append(contentsOf: bytes)
    }
}

extension FixedWidthInteger {
    /// Reads a little-endian value from the start of `bytes` (which must be long enough).
    @inlinable
    static func loadLE(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> Self {
        Self(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Self.self))
    }

    @inlinable
    static func loadBE(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> Self {
        Self(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Self.self))
    }
}
