extension SSTableReader {
    /// Reads every data block from disk (bypassing the cache) and checks everything the format
    /// promises: block CRCs and decompression, entry framing, strictly increasing keys across the
    /// whole file, each key within its index separator, each value decoding as the `EntryValue`
    /// kind its key calls for, every partition present in the bloom filter, and the stored
    /// statistics equal to statistics recomputed from the data. The first failure is thrown as
    /// `.corruption` naming the file and the offset of the block at fault.
    ///
    /// `progress(blocksDone, blocksTotal)` is called after each data block.
    package func verify(progress: ((Int, Int) -> Void)? = nil) throws -> SSTableVerifyReport {
        var report = SSTableVerifyReport(
            path: path, fileBytes: fileSize, formatVersion: footer.version, statistics: statistics)
        report.metaBytes = fileSize - Int(footer.index.offset)
        report.bloomBytes = bloom.bits.count
        report.bloomProbes = bloom.probes
        var collector = StatisticsCollector()
        var previousKey: [UInt8]? = nil
        let total = index.count
        for b in 0..<total {
            let handle = index.handles[b]
            let offset = Int(handle.offset)
            func fail(_ what: String) -> StorageError { StorageError.corruption(what, path: path, offset: offset) }
            let stored = try file.read(at: offset, count: Int(handle.size) + StoredBlock.trailerSize)
            if stored.count >= StoredBlock.trailerSize,
                stored[stored.count - StoredBlock.trailerSize] == StoredBlock.lz4Type
            {
                report.compressedBlocks += 1
            }
            let contents = try StoredBlock.unframe(stored, path: path, offset: offset, what: "data block")
            let block = try DataBlock(contents: contents, path: path, offset: offset)
            let separator = index.separator(b)
            let lowerSeparator = b > 0 ? index.separator(b - 1) : nil
            for i in 0..<block.count {
                let key = block.key(i)
                if let previousKey, compareBytes(previousKey, key) >= 0 {
                    throw fail("data block entry \(i): key is not greater than the previous block's last key")
                }
                if compareBytes(key, separator) > 0 || lowerSeparator.map({ compareBytes(key, $0) <= 0 }) == true {
                    throw fail("data block entry \(i): key lies outside the block's index range")
                }
                guard let prefixLength = InternalKey.prefixLength(of: key) else {
                    throw fail("data block entry \(i): malformed internal key")
                }
                let valueBytes = block.value(i)
                let value: EntryValue
                do {
                    value = try EntryValue.decode(valueBytes)
                } catch {
                    throw fail("data block entry \(i): value does not decode: \(error)")
                }
                switch value {
                case .header where prefixLength != key.count, .row where prefixLength == key.count:
                    throw fail("data block entry \(i): entry kind does not match its key")
                default: break
                }
                if collector.add(key: key, prefixLength: prefixLength, valueBytes: valueBytes.count, value: value),
                    !bloom.mayContain(Array(key[0..<prefixLength]))
                {
                    throw StorageError.corruption(
                        "bloom filter is missing a partition of data block entry \(i) at \(offset)",
                        path: path, offset: Int(footer.bloom.offset))
                }
                previousKey = key
                report.entriesChecked += 1
            }
            report.blocksChecked += 1
            report.dataBytes += stored.count
            progress?(b + 1, total)
        }
        if let previousKey { collector.finish(lastKey: previousKey) }
        var recomputed = collector.statistics
        recomputed.fileBytes = statistics.fileBytes
        if recomputed != statistics {
            throw StorageError.corruption(
                "stored statistics do not match the data (stored \(statistics), recomputed \(recomputed))",
                path: path, offset: Int(footer.stats.offset))
        }
        if total == 0 { progress?(0, 0) }
        return report
    }
}
