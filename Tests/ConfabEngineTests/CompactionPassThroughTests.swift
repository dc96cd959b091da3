import ConfabTestSupport
import Testing

@testable import ConfabEngine

/// Compaction passes a row through as its stored bytes when it has nothing to purge, expire or
/// shadow; the output must be byte for byte what decoding, reconciling and re-encoding every
/// entry gives, over overlapping inputs with headers, deletions, tombstones and TTLs.
@Suite struct CompactionPassThroughTests {
    private static func memtable(_ rng: inout SplitMix64, id: UInt64) -> Memtable {
        let m = Memtable(id: id)
        for p in 0..<8 {
            var mutation = Mutation(table: 1, partitionKey: [UInt8(p)])
            if Int.random(in: 0..<6, using: &rng) == 0 {
                mutation.header = PartitionHeader(
                    deletion: Bool.random(using: &rng)
                        ? DeletionTime(
                            timestamp: Int64.random(in: 0...1 << 40, using: &rng),
                            localDeletionTime: Int64.random(in: 0...2_000, using: &rng))
                        : nil,
                    rangeTombstones: [
                        RangeTombstone(
                            start: ClusteringKey([.int64(Int64.random(in: 0...20, using: &rng))]).bytes,
                            end: ClusteringKey([.int64(Int64.random(in: 20...40, using: &rng))]).bytes,
                            deletion: DeletionTime(
                                timestamp: Int64.random(in: 0...1 << 40, using: &rng), localDeletionTime: 900))
                    ])
            }
            var seen = Set<Int64>()
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                let c = Int64.random(in: 0...40, using: &rng)
                guard seen.insert(c).inserted else { continue }
                mutation.rows.append(
                    .init(clustering: ClusteringKey([.int64(c)]).bytes, fragment: RowViewTests.randomFragment(&rng)))
            }
            m.apply(mutation)
        }
        return m
    }

    private static func output(_ memtables: [Memtable], now: Int64, passThrough: Bool) throws -> [[UInt8]] {
        let purge = CompactionMerger.Purge(now: now, gcGraceSeconds: 100, maxPurgeableTimestamp: { _ in 1 << 39 })
        let merger = CompactionMerger(
            inputs: memtables.map { MemtableIterator(memtable: $0) }, purge: purge, passThrough: passThrough)
        var out: [[UInt8]] = []
        try merger.run { k, v in out.append(Array(k) + [0xEE, 0xEE] + Array(v)) }
        return out
    }

    @Test(arguments: [31, 32, 33, 34] as [UInt64])
    func passingRowsThroughGivesWhatDecodingEverythingGives(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for round in 0..<20 {
            let memtables = (0..<3).map { Self.memtable(&rng, id: UInt64($0)) }
            for now in [Int64(0), 600, 1_500, 5_000] {
                let fast = try Self.output(memtables, now: now, passThrough: true)
                let slow = try Self.output(memtables, now: now, passThrough: false)
                #expect(fast == slow, "seed \(seed) round \(round) now \(now)")
            }
        }
    }
}
