import ConfabTestSupport
import Testing

@testable import ConfabEngine

/// `RowView` reads a stored row in place; it must agree with `EntryValue.decode` on every row and
/// reject every damaged encoding the decoder rejects, without crashing.
@Suite struct RowViewTests {
    static func randomFragment(_ rng: inout SplitMix64) -> RowFragment {
        var row = RowFragment()
        if Bool.random(using: &rng) {
            let ttl: Int32 = Int.random(in: 0..<3, using: &rng) == 0 ? Int32.random(in: 1...1_000, using: &rng) : 0
            row.liveness = LivenessInfo(
                timestamp: Int64.random(in: -5...1 << 40, using: &rng), ttl: ttl,
                expiresAt: Int64.random(in: 0...2_000, using: &rng))
        }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            row.deletion = DeletionTime(
                timestamp: Int64.random(in: 0...1 << 40, using: &rng),
                localDeletionTime: Int64.random(in: 0...2_000, using: &rng))
        }
        var column: UInt32 = 0
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            column += UInt32.random(in: 1...300, using: &rng)
            let ts = Int64.random(in: -1_000...1 << 50, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:
                row.cells.append(
                    .tombstone(
                        column: column, timestamp: ts, localDeletionTime: Int64.random(in: 0...2_000, using: &rng)))
            case 1:
                row.cells.append(
                    Cell(
                        column: column, timestamp: ts, value: randomBytes(&rng),
                        ttl: Int32.random(in: 1...500, using: &rng),
                        expiresAt: Int64.random(in: 0...2_000, using: &rng)))
            default:
                row.cells.append(Cell(column: column, timestamp: ts, value: randomBytes(&rng)))
            }
        }
        return row
    }

    static func randomBytes(_ rng: inout SplitMix64) -> [UInt8] {
        let n =
            Int.random(in: 0..<3, using: &rng) == 0
            ? Int.random(in: 128...400, using: &rng) : Int.random(in: 0...20, using: &rng)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func view<R>(_ clustering: [UInt8], _ encoded: [UInt8], _ body: (RowView?) throws -> R) throws -> R {
        try clustering.withUnsafeBytes { c in
            try encoded.withUnsafeBytes { v in try body(try RowView(clustering: c, encoded: v, readTime: 1_000)) }
        }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func aViewAgreesWithTheDecoder(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<1_000 {
            let row = Self.randomFragment(&rng)
            let encoded = EntryValue.row(row).encoded()
            let clustering = Self.randomBytes(&rng)
            try Self.view(clustering, encoded) { view in
                let view = try #require(view)
                #expect(Array(view.clustering) == clustering)
                #expect(view.fragment() == row)
                #expect(view.cellCount == row.cells.count)
                #expect(view.tombstoneCountForStatistics == row.tombstoneCount(now: .min))
                if !row.cells.isEmpty || row.liveness != nil || row.deletion != nil {
                    #expect(view.minTimestamp == row.minTimestamp)
                    #expect(view.maxTimestamp == row.maxTimestamp)
                }
                for now in [Int64.min, 0, 500, 1_000, 1_500, 3_000] {
                    #expect(view.isLive(now: now) == row.isLive(now: now), "row \(row) at \(now)")
                    #expect(view.allCellsLive(now: now) == row.cells.allSatisfy { $0.isLive(now: now) })
                }
                var live: [Cell] = []
                view.forEachLiveCell { live.append($0.cell()) }
                #expect(live == row.cells.filter { $0.isLive(now: 1_000) })
            }
        }
    }

    /// The writer summarizes rows in place for the statistics; they must equal what the decoded
    /// rows give (the path `sstable verify` recomputes them by).
    @Test(arguments: [21, 22] as [UInt64])
    func writerStatisticsFromViewsMatchTheDecodedRows(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var entries: [(key: [UInt8], value: [UInt8])] = []
        for p in 0..<40 {
            var keys = Set<[UInt8]>()
            for _ in 0..<Int.random(in: 1...30, using: &rng) {
                keys.insert(ClusteringKey([.int64(Int64.random(in: -1_000...1_000, using: &rng))]).bytes)
            }
            if p % 5 == 0 {
                let h = PartitionHeader(deletion: DeletionTime(timestamp: Int64(p), localDeletionTime: Int64(p) * 3))
                entries.append((SSTableFixture.prefix(Int64(p)), EntryValue.header(h).encoded()))
            }
            for k in keys.sorted(by: { compareBytes($0, $1) < 0 }) {
                entries.append(
                    (SSTableFixture.prefix(Int64(p)) + k, EntryValue.row(Self.randomFragment(&rng)).encoded()))
            }
        }
        entries.sort { compareBytes($0.key, $1.key) < 0 }
        var expected = StatisticsCollector()
        for e in entries {
            let prefixLength = try #require(InternalKey.prefixLength(of: e.key))
            expected.add(
                key: e.key, prefixLength: prefixLength, valueBytes: e.value.count, value: try EntryValue.decode(e.value)
            )
        }
        expected.finish(lastKey: entries.last!.key)
        let dir = TempDirectory("rowview-stats")
        var written = try SSTableFixture.write(entries, to: dir.file("1.sst"))
        written.fileBytes = expected.statistics.fileBytes
        #expect(written == expected.statistics)
    }

    @Test func aHeaderIsNotARow() throws {
        let header = EntryValue.header(
            PartitionHeader(deletion: DeletionTime(timestamp: 5, localDeletionTime: 6))
        ).encoded()
        try Self.view([], header) { #expect($0 == nil) }
    }

    /// Every truncation and every single-byte change of a valid encoding is either `.corruption`
    /// or a well-formed row, never a trap, whether read as a view or through `EntryValue.decode`
    /// (which parses rows with `RowView` too, from inside a larger record).
    @Test(arguments: [11, 12] as [UInt64])
    func damagedBytesAreRejectedLikeTheDecoderRejectsThem(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<60 {
            let encoded = EntryValue.row(Self.randomFragment(&rng)).encoded()
            var variants = (0..<encoded.count).map { Array(encoded[..<$0]) }
            for _ in 0..<8 {
                var flipped = encoded
                flipped[Int.random(in: 0..<flipped.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                variants.append(flipped)
            }
            for bytes in variants {
                let decoded = try? EntryValue.decode(bytes)
                let viewed: Result<RowFragment?, any Error> = Result { try Self.view([1], bytes) { $0?.fragment() } }
                switch (decoded, viewed) {
                case (.row(let r)?, .success(let v?)): #expect(r == v)
                case (.header?, .success(nil)): break
                case (nil, .failure(let e)): #expect((e as? StorageError)?.code == .corruption)
                default: Issue.record("decoder \(String(describing: decoded)) but view \(viewed) for \(bytes)")
                }
            }
        }
    }
}
