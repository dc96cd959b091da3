/// An open, immutable SSTable. `open` reads and checks the footer, index, bloom filter and
/// statistics (all kept in memory); data blocks are read on demand, checked against their CRC,
/// and shared through the `BlockCache`.
///
/// Thread-safe: everything loaded at open is immutable, reads use pread, and the cache locks.
/// Iterators are not thread-safe; make one per reading thread. Corruption is always thrown as
/// `.corruption` with the file and the offset of the damaged block, never served.
package final class SSTableReader: @unchecked Sendable {
    package let path: String
    package let fileNumber: UInt64
    package let fileSize: Int
    /// Stored statistics, with `fileBytes` set to the file's size.
    package let statistics: SSTableStatistics
    let footer: SSTableFooter
    let index: BlockIndex
    let bloom: BloomFilter
    let file: any ReadableFile
    let blockCache: BlockCache?
    /// Partition prefixes of the first and last key: no partition outside them is in the table.
    package let firstPartition: [UInt8]
    package let lastPartition: [UInt8]

    private init(
        path: String, fileNumber: UInt64, file: any ReadableFile, footer: SSTableFooter,
        index: BlockIndex, bloom: BloomFilter, statistics: SSTableStatistics, blockCache: BlockCache?
    ) {
        self.path = path
        self.fileNumber = fileNumber
        self.file = file
        self.fileSize = file.size
        self.footer = footer
        self.index = index
        self.bloom = bloom
        self.statistics = statistics
        self.blockCache = blockCache
        self.firstPartition =
            InternalKey.prefixLength(of: statistics.minKey).map { Array(statistics.minKey.prefix($0)) } ?? []
        self.lastPartition =
            InternalKey.prefixLength(of: statistics.maxKey).map { Array(statistics.maxKey.prefix($0)) } ?? []
    }

    package static func open(fileSystem: any FileSystem, path: String, fileNumber: UInt64, blockCache: BlockCache?)
        throws -> SSTableReader
    {
        let file = try fileSystem.openForReading(path)
        let size = file.size
        guard size >= SSTableFooter.size else {
            throw StorageError.corruption("file of \(size) bytes is too short to be an SSTable", path: path, offset: 0)
        }
        let footerOffset = size - SSTableFooter.size
        let footer = try SSTableFooter(
            decoding: try file.read(at: footerOffset, count: SSTableFooter.size), path: path, offset: footerOffset)
        // The meta blocks follow one another and end where the footer starts: any other layout
        // means the footer is damaged (and some bytes would escape every checksum).
        guard [footer.index, footer.bloom, footer.stats].allSatisfy({ $0.offset <= UInt64(footerOffset) }),
            footer.index.end == footer.bloom.offset, footer.bloom.end == footer.stats.offset,
            footer.stats.end == UInt64(footerOffset)
        else {
            throw StorageError.corruption(
                "SSTable footer block handles do not tile the file", path: path, offset: footerOffset)
        }
        let indexOffset = Int(footer.index.offset)
        let index = try BlockIndex(
            decoding: try StoredBlock.read(file, footer.index, path: path, what: "index block"),
            dataEnd: footer.index.offset, path: path, offset: indexOffset)
        let bloom = try BloomFilter(
            encoded: try StoredBlock.read(file, footer.bloom, path: path, what: "bloom filter block"),
            path: path, offset: Int(footer.bloom.offset))
        var stats = try SSTableStatistics(
            decoding: try StoredBlock.read(file, footer.stats, path: path, what: "statistics block"),
            path: path, offset: Int(footer.stats.offset))
        stats.fileBytes = size
        guard (index.count == 0) == (stats.entryCount == 0) else {
            throw StorageError.corruption(
                "statistics (\(stats.entryCount) entries) disagree with the index (\(index.count) blocks)",
                path: path, offset: Int(footer.stats.offset))
        }
        return SSTableReader(
            path: path, fileNumber: fileNumber, file: file, footer: footer, index: index,
            bloom: bloom, statistics: stats, blockCache: blockCache)
    }

    package func close() throws { try file.close() }

    /// False when the table certainly holds nothing of the partition whose prefix (table, token,
    /// partition key; see `InternalKey.partitionPrefix`) is given; true when it may.
    /// The key range rules a partition out for certain (a bloom filter only almost certainly):
    /// compaction relies on that to know a table cannot block a tombstone purge.
    package func mayContainPartition(_ prefix: [UInt8]) -> Bool {
        mayContainPartition(prefix, hash: BloomFilter.hash(prefix))
    }

    /// As `mayContainPartition(_:)` with the prefix's bloom hash computed by the caller, once for
    /// every table a read checks.
    func mayContainPartition(_ prefix: [UInt8], hash: (UInt64, UInt64)) -> Bool {
        statistics.entryCount > 0
            && compareBytes(prefix, firstPartition) >= 0 && compareBytes(prefix, lastPartition) <= 0
            && bloom.mayContain(hash: hash)
    }

    /// The value stored under exactly `key`, or nil. Costs no I/O when the bloom filter rules the
    /// partition out, else at most one block read.
    func get(_ key: [UInt8], partitionHash: (UInt64, UInt64)? = nil) throws -> [UInt8]? {
        if let p = InternalKey.prefixLength(of: key) {
            let prefix = Array(key[0..<p])
            guard mayContainPartition(prefix, hash: partitionHash ?? BloomFilter.hash(prefix)) else { return nil }
        }
        let b = index.lowerBound(key)
        guard b < index.count else { return nil }
        let block = try dataBlock(b)
        let i = block.lowerBound(key)
        guard i < block.count, key.withUnsafeBytes({ compareBytes(block.keyBytes(i), $0) == 0 }) else { return nil }
        return block.value(i)
    }

    func makeIterator() -> any EntryIterator { SSTableIterator(reader: self) }

    var blockCount: Int { index.count }

    /// Data block `i` (in file order), from the cache or read, checked and decoded.
    func dataBlock(_ i: Int, useCache: Bool = true) throws -> DataBlock {
        let handle = index.handles[i]
        if useCache, let cache = blockCache, let block = cache.get(fileNumber: fileNumber, offset: handle.offset) {
            return block
        }
        let contents = try StoredBlock.read(file, handle, path: path, what: "data block")
        let block = try DataBlock(contents: contents, path: path, offset: Int(handle.offset))
        if useCache { blockCache?.insert(fileNumber: fileNumber, offset: handle.offset, block: block) }
        return block
    }

    /// Loads every data block into the block cache (checksummed and decoded as a read would).
    func loadIntoCache() throws {
        guard let cache = blockCache else { return }
        for i in 0..<index.count {
            let offset = index.handles[i].offset
            // Read straight, not through `dataBlock`: a block loaded here is not a reader's miss.
            guard cache.get(fileNumber: fileNumber, offset: offset, touch: false) == nil else { continue }
            cache.insert(fileNumber: fileNumber, offset: offset, block: try dataBlock(i, useCache: false))
        }
    }

    /// Calls `body` with every entry in key order, stopping after `limit` entries (for dump tools).
    package func forEachEntry(limit: Int? = nil, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Void) throws {
        let it = makeIterator()
        try it.seekToFirst()
        var n = 0
        while it.isValid {
            if let limit, n >= limit { return }
            try body(it.key, it.value)
            n += 1
            try it.next()
        }
    }
}
