import Foundation

@testable import ConfabEngine

/// Builders of SSTable contents shared by the SSTable, corruption and CLI tests.
enum SSTableFixture {
    static let table: TableID = 3

    static func partitionKey(_ id: Int64) -> [UInt8] {
        var pk: [UInt8] = []
        pk.appendBE64(UInt64(bitPattern: id))
        return pk
    }

    static func prefix(_ id: Int64) -> [UInt8] {
        InternalKey.partitionPrefix(table: table, partitionKey: partitionKey(id))
    }

    static func rowKey(_ partition: Int64, timestamp: Int64, id: String) -> [UInt8] {
        prefix(partition) + ClusteringKey([.int64(timestamp), .bytes(Array(id.utf8))]).bytes
    }

    static func row(timestamp: Int64, text: String, extra: [UInt8] = []) -> [UInt8] {
        var cells = [Cell(column: 1, timestamp: timestamp, value: Array(text.utf8))]
        if !extra.isEmpty { cells.append(Cell(column: 2, timestamp: timestamp, value: extra)) }
        return EntryValue.row(RowFragment(liveness: LivenessInfo(timestamp: timestamp), cells: cells)).encoded()
    }

    /// A sorted data set: `partitions` partitions with `rows(p)` rows each, some with headers,
    /// tombstones and expiring cells. Values are small unless `bigValueEvery` is set.
    static func entries(
        partitions: Int, rows: (Int) -> Int, seed: UInt64, bigValueEvery: Int = 0, bigValueBytes: Int = 400_000
    )
        -> [(key: [UInt8], value: [UInt8])]
    {
        var rng = SplitMix64(seed: seed)
        var out: [(key: [UInt8], value: [UInt8])] = []
        var n = 0
        for p in 0..<partitions {
            let pid = Int64(p) * 7919 - 50_000
            if p % 3 == 0 {
                let header = PartitionHeader(
                    deletion: p % 6 == 0
                        ? DeletionTime(timestamp: 1_000 + Int64(p), localDeletionTime: 500 + Int64(p)) : nil,
                    rangeTombstones: [
                        RangeTombstone(
                            start: ClusteringKey([.int64(5)]).bytes, end: ClusteringKey([.int64(9)]).bytes,
                            deletion: DeletionTime(timestamp: 2_000, localDeletionTime: 700))
                    ])
                out.append((prefix(pid), EntryValue.header(header).encoded()))
            }
            var ts = Int64.random(in: 0...1_000, using: &rng)
            for r in 0..<rows(p) {
                ts += Int64.random(in: 1...50, using: &rng)
                n += 1
                let key = rowKey(pid, timestamp: ts, id: "m\(r)")
                var fragment = RowFragment(
                    liveness: LivenessInfo(timestamp: ts),
                    cells: [Cell(column: 1, timestamp: ts, value: Array("message \(p)/\(r)".utf8))])
                if bigValueEvery > 0, n % bigValueEvery == 0 {
                    fragment.cells.append(
                        Cell(
                            column: 2, timestamp: ts,
                            value: (0..<bigValueBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ r) }))
                }
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: fragment.cells.append(.tombstone(column: 3, timestamp: ts + 1, localDeletionTime: 900 + ts))
                case 1:
                    fragment.cells.append(
                        Cell(column: 4, timestamp: ts, value: [1, 2, 3], ttl: 60, expiresAt: 5_000 + ts))
                case 2: fragment.deletion = DeletionTime(timestamp: ts - 1, localDeletionTime: 800)
                default: break
                }
                out.append((key, EntryValue.row(fragment).encoded()))
            }
        }
        out.sort { compareBytes($0.key, $1.key) < 0 }
        return out
    }

    @discardableResult
    static func write(
        _ entries: [(key: [UInt8], value: [UInt8])], to path: String,
        options: SSTableWriterOptions = SSTableWriterOptions()
    ) throws -> SSTableStatistics {
        let writer = try SSTableWriter(
            fileSystem: PosixFileSystem(), path: path, options: options, expectedPartitions: 16)
        for e in entries { try writer.add(key: e.key, value: e.value) }
        return try writer.finish()
    }

    static func open(_ path: String, cache: BlockCache? = nil, fileNumber: UInt64 = 1) throws -> SSTableReader {
        try SSTableReader.open(fileSystem: PosixFileSystem(), path: path, fileNumber: fileNumber, blockCache: cache)
    }

    /// Every entry through a fresh iterator, ascending.
    static func scan(_ reader: SSTableReader) throws -> [(key: [UInt8], value: [UInt8])] {
        var out: [(key: [UInt8], value: [UInt8])] = []
        let it = reader.makeIterator()
        try it.seekToFirst()
        while it.isValid {
            out.append((it.key, it.value))
            try it.next()
        }
        return out
    }

    /// XORs one byte of a file in place.
    static func flipByte(_ path: String, at offset: Int, mask: UInt8 = 0x40) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[offset] ^= mask
        try data.write(to: URL(fileURLWithPath: path))
    }
}
