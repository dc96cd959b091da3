/// Where a block sits in an SSTable: the offset of its first stored byte and the size of its stored
/// payload (without the 9-byte trailer that `StoredBlock` appends).
struct BlockHandle: Hashable, Sendable {
    var offset: UInt64
    var size: UInt32

    /// Offset just past the block's trailer: where the next block must start.
    var end: UInt64 { offset &+ UInt64(size) &+ UInt64(StoredBlock.trailerSize) }
}

/// The on-disk framing shared by every SSTable block (data, index, bloom, statistics):
///
///     payload            `size` bytes: the contents, raw or LZ4-compressed
///     type     u8        0 = raw, 1 = LZ4 block format
///     length   u32 LE    uncompressed contents length
///     crc      u32 LE    masked CRC-32C of payload + type + length
///
/// One framing for all blocks means one code path checks every byte of the file, so a flipped bit
/// anywhere is reported as corruption with the block's offset rather than served.
enum StoredBlock {
    static let trailerSize = 9
    static let rawType: UInt8 = 0
    static let lz4Type: UInt8 = 1
    /// Refuse to allocate more than this for one block, even with a valid checksum.
    static let maxContentsBytes = 1 << 30

    /// The bytes to append for `contents`: payload and trailer. Compressed only when LZ4 saves at
    /// least an eighth (LevelDB's rule): below that, decompression costs more than the I/O it saves.
    static func frame(_ contents: [UInt8], compress: Bool) throws -> [UInt8] {
        guard contents.count <= maxContentsBytes else {
            throw StorageError(.tooLarge, "SSTable block of \(contents.count) bytes exceeds \(maxContentsBytes)")
        }
        var out: [UInt8]
        var type = rawType
        if compress, contents.count >= 64, let c = LZ4.compress(contents),
            c.count <= contents.count - contents.count / 8
        {
            out = c
            type = lz4Type
        } else {
            out = contents
        }
        out.reserveCapacity(out.count + trailerSize)
        out.append(type)
        out.appendLE32(UInt32(contents.count))
        let crc = out.withUnsafeBytes { CRC32C.checksum($0) }
        out.appendLE32(CRC32C.mask(crc))
        return out
    }

    /// Reads, checks and decompresses one block. Every failure is `.corruption` naming `path` and
    /// the block's offset.
    static func read(_ file: any ReadableFile, _ handle: BlockHandle, path: String, what: String) throws -> [UInt8] {
        let offset = Int(handle.offset)
        let stored = try file.read(at: offset, count: Int(handle.size) + trailerSize)
        return try unframe(stored, path: path, offset: offset, what: what)
    }

    static func unframe(_ stored: [UInt8], path: String, offset: Int, what: String) throws -> [UInt8] {
        guard stored.count >= trailerSize else {
            throw StorageError.corruption("\(what) shorter than its trailer", path: path, offset: offset)
        }
        let payloadSize = stored.count - trailerSize
        let (type, length, storedCRC, actualCRC) = stored.withUnsafeBytes { raw in
            (
                raw[payloadSize],
                Int(UInt32.loadLE(raw, at: payloadSize + 1)),
                CRC32C.unmask(UInt32.loadLE(raw, at: payloadSize + 5)),
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(payloadSize + 5)]))
            )
        }
        guard storedCRC == actualCRC else {
            throw StorageError.corruption(
                "\(what) checksum mismatch (stored \(hex32(storedCRC)), computed \(hex32(actualCRC)))",
                path: path, offset: offset)
        }
        switch type {
        case rawType:
            guard length == payloadSize else {
                throw StorageError.corruption(
                    "\(what) raw length \(length) does not match its size \(payloadSize)", path: path, offset: offset)
            }
            return Array(stored[0..<payloadSize])
        case lz4Type:
            guard length <= maxContentsBytes else {
                throw StorageError.corruption("\(what) claims \(length) uncompressed bytes", path: path, offset: offset)
            }
            do {
                return try stored.withUnsafeBytes {
                    try LZ4.decompress(UnsafeRawBufferPointer(rebasing: $0[0..<payloadSize]), originalSize: length)
                }
            } catch let e as StorageError {
                throw StorageError.corruption("\(what): \(e.message)", path: path, offset: offset)
            }
        default:
            throw StorageError.corruption("\(what) has unknown compression type \(type)", path: path, offset: offset)
        }
    }

    static func hex32(_ v: UInt32) -> String { "0x" + String(v, radix: 16).leftPad(8) }
}

extension StorageError {
    /// Re-labels a parse error from a `ByteReader` over a block's contents so that it names the
    /// file and the block's offset (the reader's own offset is relative to the block).
    static func inBlock(_ error: any Error, what: String, path: String, offset: Int) -> any Error {
        guard let e = error as? StorageError, e.code == .corruption, e.path == nil else { return error }
        return StorageError.corruption("\(what): \(e.message)", path: path, offset: offset)
    }
}
