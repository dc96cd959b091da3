/// The durable list of live SSTables and the WAL position they cover. Replaced atomically as a
/// whole on every flush and compaction: written to MANIFEST.tmp, fdatasynced, renamed over
/// MANIFEST, and the directory fsynced — so after a crash the manifest is either the old one or
/// the new one, never a mix. Layout in docs/manifest_format.md.
struct Manifest: Hashable, Sendable {
    static let fileName = "MANIFEST"
    static let tempName = "MANIFEST.tmp"
    static let magic: [UInt8] = Array("CFBMANI1".utf8)
    static let version: UInt32 = 1

    struct TableEntry: Hashable, Sendable {
        var fileNumber: UInt64
        var fileSize: UInt64
    }

    /// Next number for a new SSTable file.
    var nextFileNumber: UInt64 = 1
    /// WAL segments with a smaller id hold only data already in SSTables and may be deleted;
    /// replay starts at this segment.
    var logNumber: UInt64 = 0
    var tables: [TableEntry] = []

    func encoded() -> [UInt8] {
        var body: [UInt8] = []
        body.appendVarint(nextFileNumber)
        body.appendVarint(logNumber)
        body.appendVarint(tables.count)
        for t in tables {
            body.appendVarint(t.fileNumber)
            body.appendVarint(t.fileSize)
        }
        var out = Self.magic
        out.appendLE32(Self.version)
        out.appendLE32(UInt32(body.count))
        out.appendLE32(CRC32C.mask(CRC32C.checksum(body)))
        out += body
        return out
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> Manifest {
        guard bytes.count >= 20, Array(bytes[0..<8]) == magic else {
            throw StorageError.corruption("manifest has no valid header (magic)", path: path, offset: 0)
        }
        let version = bytes.withUnsafeBytes { UInt32.loadLE($0, at: 8) }
        guard version == Self.version else {
            throw StorageError(
                .unsupportedVersion, "manifest format version \(version) is not supported (expected \(Self.version))",
                path: path, offset: 8)
        }
        let length = Int(bytes.withUnsafeBytes { UInt32.loadLE($0, at: 12) })
        let crc = bytes.withUnsafeBytes { UInt32.loadLE($0, at: 16) }
        guard bytes.count == 20 + length else {
            throw StorageError.corruption(
                "manifest body is \(bytes.count - 20) bytes, header says \(length)", path: path, offset: 12)
        }
        let body = Array(bytes[20...])
        guard CRC32C.unmask(crc) == CRC32C.checksum(body) else {
            throw StorageError.corruption("manifest checksum mismatch", path: path, offset: 20)
        }
        var r = ByteReader(body, context: "manifest")
        do {
            var m = Manifest()
            m.nextFileNumber = try r.readVarint()
            m.logNumber = try r.readVarint()
            let n = try r.readVarintInt(max: 1 << 24)
            for _ in 0..<n {
                m.tables.append(TableEntry(fileNumber: try r.readVarint(), fileSize: try r.readVarint()))
            }
            guard r.isAtEnd else { throw r.fail("trailing bytes") }
            return m
        } catch var e as StorageError {
            e.path = path
            e.offset = (e.offset ?? 0) + 20
            throw e
        }
    }

    static func load(directory: String, fileSystem: any FileSystem) throws -> Manifest? {
        let path = joinPath(directory, fileName)
        guard fileSystem.fileExists(path) else { return nil }
        let file = try fileSystem.openForReading(path)
        defer { try? file.close() }
        return try decode(try file.readAll(), path: path)
    }

    /// Atomically replaces the manifest (temp file, fdatasync, rename, directory fsync).
    func store(directory: String, fileSystem: any FileSystem) throws {
        let tmp = joinPath(directory, Self.tempName)
        let file = try fileSystem.createFile(tmp, truncate: true)
        do {
            try file.append(encoded())
            try file.sync()
            try file.close()
        } catch {
            try? file.close()
            try? fileSystem.remove(tmp)
            throw error
        }
        try fileSystem.rename(tmp, to: joinPath(directory, Self.fileName))
        try fileSystem.syncDirectory(directory)
    }
}
