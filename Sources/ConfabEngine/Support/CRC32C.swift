import CCRC32C

/// CRC-32C (Castagnoli), the checksum on every WAL record, SSTable block and manifest edit.
/// Hardware-accelerated through SSE4.2 where available.
package enum CRC32C {
    @inlinable
    package static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        extend(0, bytes)
    }

    package static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        let array = Array(bytes)
        return array.withUnsafeBytes { checksum($0) }
    }

    @inlinable
    package static func extend(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        confab_crc32c_extend(crc, bytes.baseAddress, bytes.count)
    }

    static func portable(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { confab_crc32c_extend_portable(0, $0.baseAddress, $0.count) }
    }

    static var usesHardware: Bool { confab_crc32c_hardware() != 0 }

    /// LevelDB's masking: a CRC stored next to data that itself holds CRCs is rotated and offset so
    /// that a checksum of a checksum does not degenerate.
    @inlinable
    package static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    @inlinable
    package static func unmask(_ masked: UInt32) -> UInt32 {
        let rot = masked &- 0xa282_ead8
        return (rot >> 17) | (rot << 15)
    }
}
