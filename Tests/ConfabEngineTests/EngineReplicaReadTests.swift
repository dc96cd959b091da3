import Foundation
import Testing

@testable import ConfabEngine

/// The engine surfaces the ring needs: raw slices for read repair and token-range scans for
/// Merkle trees and streaming.
@Suite struct EngineReplicaReadTests {
    func open(_ dir: TempDirectory) throws -> StorageEngine {
        var o = EngineOptions()
        o.syncMode = .periodic(milliseconds: 20)
        o.memtableBytes = 32 << 10
        return try StorageEngine.open(directory: dir.path, options: o)
    }

    @Test func rawSlicesCarryTombstonesThatLiveReadsHide() throws {
        let dir = TempDirectory("raw")
        let engine = try open(dir)
        defer { try? engine.close() }
        for i in 0..<5 {
            try engine.write(
                TestMessages.mutation(
                    chatId: 7, timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: "b", writeTime: 10))
        }
        let ck = TestMessages.clustering(timestamp: 2, messageId: "m2")
        // Deleted now, so within gc grace: a tombstone dated 1970 is purgeable at once, and the
        // single-table tombstone compaction that may follow the flush purged it before the raw
        // read in one CI run (rows 3, no tombstones).
        let deletedAt = Int64(Date().timeIntervalSince1970)
        try engine.write(
            Mutation(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 7),
                rows: [
                    .init(
                        clustering: ck,
                        fragment: RowFragment(deletion: DeletionTime(timestamp: 20, localDeletionTime: deletedAt)))
                ]))
        let range = RangeTombstone(
            start: TestMessages.clustering(timestamp: 4, messageId: ""), end: nil,
            deletion: DeletionTime(timestamp: 30, localDeletionTime: deletedAt))
        try engine.write(
            Mutation(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 7),
                header: PartitionHeader(rangeTombstones: [range])))
        try engine.flush()
        // Whatever compaction the flush starts has run: the tombstones must outlive it.
        try engine.waitForBackgroundWork()

        let live = try engine.read(TestMessages.latest(chatId: 7, limit: 10))
        #expect(live.rows.compactMap(TestMessages.message(from:)).map(\.messageId) == ["m3", "m1", "m0"])
        let raw = try engine.readRaw(TestMessages.latest(chatId: 7, limit: 10))
        #expect(raw.header.rangeTombstones == [range])
        let deleted = raw.rows.first { $0.clustering == ck }
        #expect(deleted?.fragment.deletion?.timestamp == 20)
        #expect(deleted?.fragment.cells.isEmpty == true)
        // The row under the range tombstone is shadowed entirely: it reads as an empty fragment.
        #expect(raw.rows.count == 5)
        // The limit counts live rows only.
        let two = try engine.readRaw(TestMessages.latest(chatId: 7, limit: 2))
        #expect(two.rows.filter { $0.fragment.isLive(now: 0) }.count == 2)
    }

    @Test func tokenRangeScansVisitExactlyTheirPartitionsInOrder() throws {
        let dir = TempDirectory("scan")
        let engine = try open(dir)
        defer { try? engine.close() }
        for chat in 0..<200 {
            for i in 0..<3 {
                try engine.write(
                    TestMessages.mutation(
                        chatId: Int64(chat), timestamp: Int64(i), messageId: "m", sender: "s", body: "b", writeTime: 1))
            }
        }
        // Another table must never show up.
        try engine.write(
            Mutation(
                table: 9, partitionKey: [1],
                rows: [
                    .init(clustering: [1], fragment: RowFragment(cells: [Cell(column: 0, timestamp: 1, value: [1])]))
                ]))
        try engine.flush()
        try engine.write(
            TestMessages.mutation(chatId: 0, timestamp: 99, messageId: "late", sender: "s", body: "b", writeTime: 1))

        var all: [StorageEngine.ScannedEntry] = []
        try engine.scan(table: TestMessages.table, tokens: Int64.min...Int64.max) {
            all.append($0)
            return true
        }
        #expect(all.count == 601)
        #expect(all.map(\.token) == all.map(\.token).sorted())
        #expect(Set(all.map(\.partitionKey)).count == 200)

        let range: ClosedRange<Int64> = -1_000_000_000_000_000_000...2_000_000_000_000_000_000
        var some: [StorageEngine.ScannedEntry] = []
        try engine.scan(table: TestMessages.table, tokens: range) {
            some.append($0)
            return true
        }
        #expect(some.allSatisfy { range.contains($0.token) })
        #expect(some.count == all.filter { range.contains($0.token) }.count)

        var first: [StorageEngine.ScannedEntry] = []
        try engine.scan(table: TestMessages.table, tokens: Int64.min...Int64.max) {
            first.append($0)
            return first.count < 10
        }
        #expect(first.count == 10)
    }
}
