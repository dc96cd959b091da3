/// How SSTables are written.
struct SSTableWriterOptions: Sendable, Hashable {
    /// Target uncompressed size of a data block. A block is closed once it reaches this size, so
    /// a single large value makes one block of its own size.
    var blockBytes = 16 << 10
    /// Bloom filter bits per partition (10 ≈ 1% false positives).
    var bloomBitsPerKey = 10
    /// LZ4-compress blocks (each block is stored raw when compression does not save an eighth).
    var compress = true
}

/// Writes one SSTable from entries given in strictly increasing key order: data blocks as they
/// fill, then index, bloom filter, statistics and footer in `finish()` (layout in
/// docs/sstable_format.md).
///
/// Durability: `finish()` fdatasyncs the file before returning; the name is not made durable
/// here — the engine writes under a temporary name, renames, and syncs the directory. Not
/// thread-safe: one writer per flush or compaction.
final class SSTableWriter {
    let path: String
    private let fileSystem: any FileSystem
    private let options: SSTableWriterOptions
    private var file: (any WritableFile)?
    private var finished = false
    private var block = BlockBuilder()
    private var index = BlockIndex()
    /// The last block written, waiting for the next key to choose its index separator.
    private var pendingHandle: BlockHandle?
    private var lastKey: [UInt8] = []
    private var offset = 0
    private var collector = StatisticsCollector()
    private var partitionHashes: [(UInt64, UInt64)] = []

    /// Creates (truncating) the file at `path`. `expectedPartitions` only pre-sizes buffers; the
    /// bloom filter is sized for the partitions actually written.
    init(fileSystem: any FileSystem, path: String, options: SSTableWriterOptions, expectedPartitions: Int) throws {
        self.fileSystem = fileSystem
        self.path = path
        self.options = options
        partitionHashes.reserveCapacity(max(0, min(expectedPartitions, 1 << 20)))
        file = try fileSystem.createFile(path, truncate: true)
    }

    /// File bytes written so far (data blocks; meta blocks and footer after `finish()`).
    var bytesWritten: Int { offset }

    /// Appends one entry. Keys must be well-formed internal keys in strictly increasing order and
    /// values encoded `EntryValue`s of the kind the key calls for (a header for the partition
    /// prefix itself, a row otherwise); anything else throws `.invalidArgument` and writes nothing.
    func add(key: [UInt8], value: [UInt8]) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try add(key: k, value: v) } }
    }

    /// `add` from borrowed bytes: a flush passes the memtable's entries as they lie. The value is
    /// checked and summarized for the statistics in place (`RowView`), not decoded.
    func add(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws {
        guard file != nil, !finished else {
            throw StorageError(.invalidArgument, "SSTable writer is already finished or abandoned", path: path)
        }
        if collector.statistics.entryCount > 0, lastKey.withUnsafeBytes({ compareBytes($0, key) }) >= 0 {
            throw StorageError(.invalidArgument, "SSTable keys must be strictly increasing", path: path)
        }
        guard let prefixLength = InternalKey.prefixLength(of: key) else {
            throw StorageError(.invalidArgument, "malformed internal key of \(key.count) bytes", path: path)
        }
        let isHeaderKey = prefixLength == key.count
        let entry: StatisticsCollector.Entry
        do {
            if let row = try RowView(clustering: UnsafeRawBufferPointer(rebasing: key[prefixLength...]), encoded: value)
            {
                entry = StatisticsCollector.Entry(row)
            } else {
                // A header (rare): decoded for the statistics' deletion times.
                entry = StatisticsCollector.Entry(try EntryValue.decode(Array(value)))
            }
        } catch {
            throw StorageError(.invalidArgument, "value does not decode as an entry: \(error)", path: path)
        }
        switch entry {
        case .header where !isHeaderKey, .row where isHeaderKey:
            throw StorageError(
                .invalidArgument,
                "a partition header must be stored under the partition prefix and a row under a clustering key",
                path: path)
        default: break
        }
        if let handle = pendingHandle {
            index.append(separator: shortestSeparator(lastKey, Array(key)), handle: handle)
            pendingHandle = nil
        }
        if collector.add(key: key, prefixLength: prefixLength, valueBytes: value.count, entry: entry) {
            partitionHashes.append(Murmur3.hash128(UnsafeRawBufferPointer(rebasing: key[0..<prefixLength])))
        }
        block.add(key: key, value: value)
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        if block.estimatedSize >= options.blockBytes {
            try flushBlock()
        }
    }

    private func flushBlock() throws {
        guard !block.isEmpty else { return }
        pendingHandle = try writeBlock(block.finish(), compress: options.compress)
    }

    private func writeBlock(_ contents: [UInt8], compress: Bool) throws -> BlockHandle {
        guard let file else { throw StorageError(.invalidArgument, "SSTable writer is closed", path: path) }
        let framed = try StoredBlock.frame(contents, compress: compress)
        try file.append(framed)
        let handle = BlockHandle(offset: UInt64(offset), size: UInt32(framed.count - StoredBlock.trailerSize))
        offset += framed.count
        return handle
    }

    /// Writes the last data block, the index, bloom filter, statistics and footer, fdatasyncs and
    /// closes the file. Returns the statistics (with `fileBytes`). On error, call `abandon()`.
    func finish() throws -> SSTableStatistics {
        guard let file, !finished else {
            throw StorageError(.invalidArgument, "SSTable writer is already finished or abandoned", path: path)
        }
        try flushBlock()
        if let handle = pendingHandle {
            index.append(separator: lastKey, handle: handle)
            pendingHandle = nil
        }
        let indexHandle = try writeBlock(index.encoded(), compress: options.compress)
        let bloom = BloomFilter.build(hashes: partitionHashes, bitsPerKey: options.bloomBitsPerKey)
        let bloomHandle = try writeBlock(bloom, compress: false)
        collector.finish(lastKey: lastKey)
        let statsHandle = try writeBlock(collector.statistics.encoded(), compress: false)
        let footer = SSTableFooter(index: indexHandle, bloom: bloomHandle, stats: statsHandle)
        try file.append(footer.encoded())
        offset += SSTableFooter.size
        try file.sync()
        try file.close()
        self.file = nil
        finished = true
        collector.finish(lastKey: lastKey)
        var stats = collector.statistics
        stats.fileBytes = offset
        return stats
    }

    /// Closes and deletes the partial file. Safe to call at any time, more than once.
    func abandon() {
        if let file {
            try? file.close()
            self.file = nil
            if !finished { try? fileSystem.remove(path) }
        }
        finished = true
    }
}
