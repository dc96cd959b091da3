import Foundation
import Testing

@testable import ConfabEngine

@Suite struct SSTableTests {
    @Test func roundTripsManyEntriesIncludingLargeValues() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let entries = SSTableFixture.entries(
            partitions: 40, rows: { $0 % 7 == 0 ? 300 : 20 }, seed: 1, bigValueEvery: 97)
        let stats = try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: 4096))
        #expect(stats.entryCount == entries.count)
        #expect(stats.fileBytes == (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int))
        let reader = try SSTableFixture.open(path, cache: BlockCache(capacityBytes: 1 << 20))
        #expect(reader.statistics == stats)
        #expect(reader.blockCount > 10)
        let scanned = try SSTableFixture.scan(reader)
        #expect(scanned.count == entries.count)
        #expect(scanned.map(\.key) == entries.map(\.key))
        #expect(scanned.map(\.value) == entries.map(\.value))
        #expect(entries.contains { $0.value.count > 400_000 })
        // Backwards too.
        let it = reader.makeIterator()
        try it.seekToLast()
        var backwards: [[UInt8]] = []
        while it.isValid {
            backwards.append(it.key)
            try it.prev()
        }
        #expect(backwards == entries.map(\.key).reversed())
        for e in entries.enumerated() where e.offset % 11 == 0 {
            #expect(try reader.get(e.element.key) == e.element.value)
        }
        #expect(try reader.get(SSTableFixture.rowKey(123_456_789, timestamp: 1, id: "x")) == nil)
        let report = try reader.verify(progress: nil)
        #expect(report.entriesChecked == entries.count)
        #expect(report.blocksChecked == reader.blockCount)
    }

    @Test func uncompressedTablesRoundTripToo() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let entries = SSTableFixture.entries(partitions: 10, rows: { _ in 50 }, seed: 2)
        try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: 1024, compress: false))
        let reader = try SSTableFixture.open(path)
        #expect(try SSTableFixture.scan(reader).map(\.value) == entries.map(\.value))
        #expect(try reader.verify(progress: nil).compressedBlocks == 0)
    }

    @Test func statisticsDescribeTheData() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let p = SSTableFixture.prefix(7)
        let header = PartitionHeader(
            deletion: DeletionTime(timestamp: 5, localDeletionTime: 1_000),
            rangeTombstones: [
                RangeTombstone(
                    start: [0x10], end: nil, deletion: DeletionTime(timestamp: 900, localDeletionTime: 1_500))
            ])
        let c1 = ClusteringKey([.int64(10)]).bytes
        let c2 = ClusteringKey([.int64(20)]).bytes
        let row1 = RowFragment(
            liveness: LivenessInfo(timestamp: 100),
            cells: [
                Cell(column: 1, timestamp: 100, value: [1]),
                .tombstone(column: 2, timestamp: 101, localDeletionTime: 2_000),
            ])
        let row2 = RowFragment(
            deletion: DeletionTime(timestamp: 50, localDeletionTime: 1_200),
            cells: [Cell(column: 1, timestamp: 3_000, value: [2], ttl: 10, expiresAt: 9_999)])
        let q = SSTableFixture.prefix(8)
        let entries = [
            (key: p, value: EntryValue.header(header).encoded()),
            (key: p + c2, value: EntryValue.row(row1).encoded()),
            (key: p + c1, value: EntryValue.row(row2).encoded()),
            (key: q + c1, value: EntryValue.row(row1).encoded()),
        ].sorted { compareBytes($0.key, $1.key) < 0 }
        let stats = try SSTableFixture.write(entries, to: path)
        #expect(stats.entryCount == 4)
        #expect(stats.partitionCount == 2)
        #expect(stats.rowCount == 3)
        // Header: partition deletion + 1 range; row1: 1 cell tombstone (twice); row2: row deletion.
        #expect(stats.tombstoneCount == 2 + 1 + 1 + 1)
        #expect(stats.minTimestamp == 5)
        #expect(stats.maxTimestamp == 3_000)
        #expect(stats.minClustering == c1)
        #expect(stats.maxClustering == c2)
        #expect(stats.minKey == entries.first?.key)
        #expect(stats.maxKey == entries.last?.key)
        #expect(stats.uncompressedBytes == entries.reduce(0) { $0 + $1.key.count + $1.value.count })
        #expect(stats.maxLocalDeletionTime == 9_999)
        let reader = try SSTableFixture.open(path)
        #expect(reader.statistics == stats)
        #expect(reader.mayContainPartition(p))
        #expect(reader.mayContainPartition(q))
        #expect(try reader.get(p) == EntryValue.header(header).encoded())
        _ = try reader.verify(progress: nil)
    }

    @Test func emptyTableOpensAndIteratesNothing() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let stats = try SSTableFixture.write([], to: path)
        #expect(stats.entryCount == 0)
        let reader = try SSTableFixture.open(path)
        let it = reader.makeIterator()
        try it.seekToFirst()
        #expect(!it.isValid)
        try it.seekToLast()
        #expect(!it.isValid)
        try it.seek([1])
        #expect(!it.isValid)
        try it.seekBefore([1])
        #expect(!it.isValid)
        #expect(!reader.mayContainPartition(SSTableFixture.prefix(1)))
        #expect(try reader.get(SSTableFixture.prefix(1)) == nil)
        #expect(try reader.verify(progress: nil).entriesChecked == 0)
    }

    @Test func writerRejectsBadInputAndAbandonRemovesTheFile() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.tmp")
        let writer = try SSTableWriter(
            fileSystem: PosixFileSystem(), path: path, options: SSTableWriterOptions(), expectedPartitions: 1)
        let k1 = SSTableFixture.rowKey(1, timestamp: 1, id: "a")
        let k2 = SSTableFixture.rowKey(1, timestamp: 2, id: "a")
        try writer.add(key: k2, value: SSTableFixture.row(timestamp: 1, text: "x"))
        func expectInvalid(_ body: () throws -> Void) {
            #expect { try body() } throws: { ($0 as? StorageError)?.code == .invalidArgument }
        }
        expectInvalid { try writer.add(key: k1, value: SSTableFixture.row(timestamp: 1, text: "x")) }
        expectInvalid { try writer.add(key: k2, value: SSTableFixture.row(timestamp: 1, text: "x")) }
        expectInvalid { try writer.add(key: [1, 2, 3], value: SSTableFixture.row(timestamp: 1, text: "x")) }
        let k3 = SSTableFixture.rowKey(1, timestamp: 3, id: "a")
        expectInvalid { try writer.add(key: k3, value: [9, 9]) }
        expectInvalid { try writer.add(key: k3, value: EntryValue.header(PartitionHeader()).encoded()) }
        #expect(writer.bytesWritten == 0)
        writer.abandon()
        #expect(!FileManager.default.fileExists(atPath: path))
        expectInvalid { try writer.add(key: k3, value: SSTableFixture.row(timestamp: 1, text: "x")) }
    }

    @Test func bytesWrittenGrowsAsBlocksFill() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let writer = try SSTableWriter(
            fileSystem: PosixFileSystem(), path: path, options: SSTableWriterOptions(blockBytes: 1024),
            expectedPartitions: 1)
        for e in SSTableFixture.entries(partitions: 2, rows: { _ in 200 }, seed: 3) {
            try writer.add(key: e.key, value: e.value)
        }
        let before = writer.bytesWritten
        #expect(before > 0)
        let stats = try writer.finish()
        #expect(writer.bytesWritten == stats.fileBytes)
        #expect(stats.fileBytes > before)
    }

    /// seek / seekBefore / next / prev against a sorted array, with targets on, between and
    /// around the stored keys, across many small blocks.
    @Test(arguments: [512, 4096])
    func iteratorMatchesASortedArrayModel(blockBytes: Int) throws {
        let seed = testSeed()
        print("iteratorMatchesASortedArrayModel seed \(seed) (replay with CONFAB_SEED=\(seed))")
        var rng = SplitMix64(seed: seed)
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let entries = SSTableFixture.entries(
            partitions: 30, rows: { $0 == 4 ? 2_000 : Int.random(in: 0...40, using: &rng) }, seed: seed)
        try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: blockBytes))
        let reader = try SSTableFixture.open(path, cache: BlockCache(capacityBytes: 64 << 10))
        let keys = entries.map(\.key)
        func lowerBound(_ t: [UInt8]) -> Int {
            var lo = 0
            var hi = keys.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if compareBytes(keys[mid], t) < 0 { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        func target() -> [UInt8] {
            let k = keys[Int.random(in: 0..<keys.count, using: &rng)]
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: return k
            case 1: return k + [0]
            case 2: return Array(k.dropLast(Int.random(in: 1...min(5, k.count), using: &rng)))
            case 3: return InternalKey.prefixSuccessor(k) ?? k
            case 4: return Array(k[0..<(InternalKey.prefixLength(of: k) ?? k.count)])
            default:
                return (0..<Int.random(in: 0...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
        }
        let it = reader.makeIterator()
        for round in 0..<400 {
            let t = target()
            var position: Int?
            if Bool.random(using: &rng) {
                try it.seek(t)
                let lb = lowerBound(t)
                position = lb < keys.count ? lb : nil
            } else {
                try it.seekBefore(t)
                let lb = lowerBound(t)
                position = lb > 0 ? lb - 1 : nil
            }
            for step in 0..<Int.random(in: 0...60, using: &rng) {
                #expect(it.isValid == (position != nil), "seed \(seed) round \(round) step \(step)")
                guard let pos = position, it.isValid else { break }
                #expect(it.key == keys[pos], "seed \(seed) round \(round) step \(step)")
                #expect(it.value == entries[pos].value, "seed \(seed) round \(round) step \(step)")
                if Bool.random(using: &rng) {
                    try it.next()
                    position = pos + 1 < keys.count ? pos + 1 : nil
                } else {
                    try it.prev()
                    position = pos > 0 ? pos - 1 : nil
                }
            }
            if round % 50 == 0 {
                let i = Int.random(in: 0..<keys.count, using: &rng)
                #expect(try reader.get(keys[i]) == entries[i].value, "seed \(seed)")
            }
        }
    }

    /// "The latest 50 messages of chat X before time T": the cost is one index search plus the
    /// one or two blocks holding those rows, whatever the size of the partition.
    @Test func descendingSliceTouchesFewBlocksInAHugePartition() throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let big: Int64 = 1
        var entries: [(key: [UInt8], value: [UInt8])] = []
        for ts in 0..<60_000 {
            entries.append(
                (
                    SSTableFixture.rowKey(big, timestamp: Int64(ts), id: "m"),
                    SSTableFixture.row(timestamp: Int64(ts), text: "hi \(ts)")
                ))
        }
        for ts in 0..<100 {
            entries.append(
                (
                    SSTableFixture.rowKey(2, timestamp: Int64(ts), id: "m"),
                    SSTableFixture.row(timestamp: Int64(ts), text: "hi \(ts)")
                ))
        }
        entries.sort { compareBytes($0.key, $1.key) < 0 }
        try SSTableFixture.write(entries, to: path)
        for (partition, before) in [(big, Int64(31_337)), (Int64(2), Int64(80))] {
            let cache = BlockCache(capacityBytes: 64 << 20)
            let reader = try SSTableFixture.open(path, cache: cache)
            let prefix = SSTableFixture.prefix(partition)
            let it = reader.makeIterator()
            try it.seekBefore(prefix + ClusteringKey([.int64(before)]).bytes)
            var got: [Int64] = []
            while it.isValid, got.count < 50, it.key.starts(with: prefix) {
                if case .row(let r)? = try? EntryValue.decode(it.value) { got.append(r.cells[0].timestamp) }
                try it.prev()
            }
            #expect(got == Array((before - 50)..<before).reversed())
            #expect(cache.misses <= 2, "partition \(partition): \(cache.misses) blocks read")
        }
    }
}

@Suite struct BlockCacheTests {
    private func block(_ bytes: Int) throws -> DataBlock {
        var b = BlockBuilder()
        b.add(key: [1], value: [UInt8](repeating: 7, count: bytes))
        return try DataBlock(contents: b.finish(), path: "t", offset: 0)
    }

    @Test func evictsLeastRecentlyUsedWithinCapacity() throws {
        let one = try block(1000)
        let cache = BlockCache(capacityBytes: one.charge * 3)
        for i in 0..<3 { cache.insert(fileNumber: 1, offset: UInt64(i), block: try block(1000)) }
        #expect(cache.get(fileNumber: 1, offset: 0) != nil)  // 0 is now the newest
        cache.insert(fileNumber: 1, offset: 3, block: try block(1000))  // evicts 1
        #expect(cache.get(fileNumber: 1, offset: 1) == nil)
        #expect(cache.get(fileNumber: 1, offset: 0) != nil)
        #expect(cache.get(fileNumber: 1, offset: 2) != nil)
        #expect(cache.get(fileNumber: 1, offset: 3) != nil)
        #expect(cache.get(fileNumber: 2, offset: 0) == nil)
        #expect(cache.hits == 4)
        #expect(cache.misses == 2)
        #expect(cache.bytesUsed <= cache.capacityBytes)
        cache.insert(fileNumber: 1, offset: 9, block: try block(10_000))  // larger than the cache: not kept
        #expect(cache.get(fileNumber: 1, offset: 9) == nil)
        cache.evict(fileNumber: 1)
        #expect(cache.count == 0)
        #expect(cache.bytesUsed == 0)
    }

    @Test func concurrentReadersShareOneCache() async throws {
        let dir = TempDirectory("sstable")
        let path = dir.file("1.sst")
        let entries = SSTableFixture.entries(partitions: 20, rows: { _ in 100 }, seed: 4)
        try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: 1024))
        let cache = BlockCache(capacityBytes: 32 << 10)
        let reader = try SSTableFixture.open(path, cache: cache)
        let keys = entries.map(\.key)
        let values = entries.map(\.value)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for t in 0..<4 {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(t))
                    for _ in 0..<500 {
                        let i = Int.random(in: 0..<keys.count, using: &rng)
                        guard try reader.get(keys[i]) == values[i] else { return false }
                    }
                    return true
                }
            }
            for try await ok in group { #expect(ok) }
        }
        #expect(cache.hits > 0)
        #expect(cache.bytesUsed <= 32 << 10)
    }
}
