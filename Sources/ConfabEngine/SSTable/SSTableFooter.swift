/// The fixed-size end of every SSTable: where the meta blocks are, the format version, a checksum
/// and a magic number. Read first on open; all fixed-width fields little-endian.
///
///     0   index offset   u64     8   index size   u32
///     12  bloom offset   u64     20  bloom size   u32
///     24  stats offset   u64     32  stats size   u32
///     36  version        u32     (1)
///     40  crc            u32     masked CRC-32C of bytes 0 ..< 40
///     44  magic          u64     0x5453_4241_464E_4F43: the ASCII bytes "CONFABST" on disk
struct SSTableFooter: Hashable, Sendable {
    static let size = 52
    static let magic: UInt64 = 0x5453_4241_464E_4F43
    static let currentVersion: UInt32 = 1

    var index: BlockHandle
    var bloom: BlockHandle
    var stats: BlockHandle
    var version: UInt32 = currentVersion

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        for h in [index, bloom, stats] {
            out.appendLE64(h.offset)
            out.appendLE32(h.size)
        }
        out.appendLE32(version)
        out.appendLE32(CRC32C.mask(CRC32C.checksum(out)))
        out.appendLE64(Self.magic)
        return out
    }

    /// Checks magic, then checksum, then version. A wrong magic or checksum is `.corruption` (not
    /// an SSTable, truncated, or damaged); a valid footer of an unknown version is
    /// `.unsupportedVersion`. `offset` is the footer's offset in the file, for the error.
    init(decoding bytes: [UInt8], path: String, offset: Int) throws {
        guard bytes.count == Self.size else {
            throw StorageError.corruption(
                "SSTable footer must be \(Self.size) bytes, got \(bytes.count)", path: path, offset: offset)
        }
        let fields = bytes.withUnsafeBytes { raw in
            (
                magic: UInt64.loadLE(raw, at: 44),
                crc: CRC32C.unmask(UInt32.loadLE(raw, at: 40)),
                actual: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<40])),
                version: UInt32.loadLE(raw, at: 36),
                handles: (0..<3).map {
                    BlockHandle(offset: UInt64.loadLE(raw, at: $0 * 12), size: UInt32.loadLE(raw, at: $0 * 12 + 8))
                }
            )
        }
        guard fields.magic == Self.magic else {
            throw StorageError.corruption(
                "bad SSTable magic 0x\(String(fields.magic, radix: 16)) (not an SSTable, or truncated)", path: path,
                offset: offset + 44)
        }
        guard fields.crc == fields.actual else {
            throw StorageError.corruption(
                "SSTable footer checksum mismatch (stored \(StoredBlock.hex32(fields.crc)), computed \(StoredBlock.hex32(fields.actual)))",
                path: path, offset: offset)
        }
        guard fields.version == Self.currentVersion else {
            throw StorageError(
                .unsupportedVersion,
                "SSTable format version \(fields.version) is not supported (this build reads \(Self.currentVersion))",
                path: path, offset: offset + 36)
        }
        index = fields.handles[0]
        bloom = fields.handles[1]
        stats = fields.handles[2]
        version = fields.version
    }

    init(index: BlockHandle, bloom: BlockHandle, stats: BlockHandle) {
        self.index = index
        self.bloom = bloom
        self.stats = stats
    }
}
