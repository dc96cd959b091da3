/// Appends protocol primitives (big-endian integers, length-prefixed bytes) to a byte array.
/// The layouts are in docs/node_protocol.md § Primitive types.
struct WireWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }

    mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    mutating func u32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift)))
        }
    }

    mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
        }
    }

    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

    /// `short bytes`: u16 length, then the bytes. Callers keep values under 64 KiB.
    mutating func shortBytes(_ v: some Collection<UInt8>) {
        precondition(v.count <= Int(UInt16.max), "short bytes over 65535")
        u16(UInt16(v.count))
        bytes.append(contentsOf: v)
    }

    /// `string`: short bytes holding UTF-8.
    mutating func string(_ s: String) { shortBytes(Array(s.utf8)) }

    /// `long string`: u32 length, then UTF-8 (error messages).
    mutating func longString(_ s: String) { longBytes(Array(s.utf8)) }

    /// `bytes`: u32 length, then the bytes.
    mutating func longBytes(_ v: some Collection<UInt8>) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }
}
