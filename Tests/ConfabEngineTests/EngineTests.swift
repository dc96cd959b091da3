import Foundation
import Testing
@testable import ConfabEngine

@Suite struct EngineTests {
    func options(_ mode: SyncMode = .group, memtable: Int = 1 << 20) -> EngineOptions {
        var o = EngineOptions()
        o.syncMode = mode
        o.memtableBytes = memtable
        o.blockBytes = 4096
        return o
    }

    @Test func hundredThousandCharacterMessagesRoundTripExactly() throws {
        let dir = TempDirectory("big")
        // 100,000 characters of 4-byte UTF-8: 400 KB.
        let body = String(repeating: "😀", count: 50_000) + String(repeating: "𝄞", count: 50_000)
        #expect(body.count == 100_000)
        #expect(body.utf8.count == 400_000)
        var engine = try StorageEngine.open(directory: dir.path, options: options())
        for i in 0..<5 {
            try engine.write(ChatMessages.mutation(chatId: 9, timestamp: Int64(i), messageId: "m\(i)", sender: "ada", body: body + "\(i)", writeTime: 1))
        }
        func check() throws {
            let rows = try engine.read(ChatMessages.latest(chatId: 9, limit: 10)).rows.compactMap(ChatMessages.message(from:))
            #expect(rows.map(\.messageId) == ["m4", "m3", "m2", "m1", "m0"])
            for m in rows { #expect(m.body == body + m.messageId.dropFirst()) }
        }
        try check()          // from the memtable
        try engine.close()
        engine = try StorageEngine.open(directory: dir.path, options: options())
        try check()          // replayed from the WAL
        try engine.flush()
        try check()          // from an SSTable
        try engine.close()
        engine = try StorageEngine.open(directory: dir.path, options: options())
        try check()
        try engine.close()
    }

    @Test func latestAndDeepPagesOfALargeChat() throws {
        let dir = TempDirectory("deep")
        let engine = try StorageEngine.open(directory: dir.path, options: options(.periodic(milliseconds: 20), memtable: 256 << 10))
        defer { try? engine.close() }
        let n = 20_000
        var batch: [Mutation] = []
        for i in 0..<n {
            batch.append(ChatMessages.mutation(chatId: 1, timestamp: Int64(i) * 10, messageId: "m\(i)", sender: "s", body: "body \(i)", writeTime: 1))
            batch.append(ChatMessages.mutation(chatId: Int64(2 + i % 50), timestamp: Int64(i), messageId: "x\(i)", sender: "s", body: "other", writeTime: 1))
            if batch.count >= 200 { try engine.write(batch); batch.removeAll() }
        }
        try engine.write(batch)
        try engine.waitForBackgroundWork()
        #expect(engine.stats.flushes > 0)
        let latest = try engine.read(ChatMessages.latest(chatId: 1, limit: 50)).rows.compactMap(ChatMessages.message(from:))
        #expect(latest.map(\.messageId) == (0..<50).map { "m\(n - 1 - $0)" })
        // 15,000 messages back: before timestamp of message 5,000.
        let deep = try engine.read(ChatMessages.latest(chatId: 1, before: 5_000 * 10, limit: 50))
        #expect(deep.rows.compactMap(ChatMessages.message(from:)).map(\.messageId) == (0..<50).map { "m\(4_999 - $0)" })
        // Paging with the cursor continues exactly where the last page stopped.
        var q = ChatMessages.latest(chatId: 1, before: 5_000 * 10, limit: 50)
        q.cursor = deep.cursor
        let next = try engine.read(q).rows.compactMap(ChatMessages.message(from:))
        #expect(next.first?.messageId == "m4949")
        // Ascending slice with both bounds.
        let slice = try engine.read(SliceQuery(table: ChatMessages.table, partitionKey: ChatMessages.partitionKey(chatId: 1),
                                               lower: ClusteringBound(ClusteringKey([.int64(100)]), inclusive: true),
                                               upper: ClusteringBound(ClusteringKey([.int64(130)]), inclusive: true), limit: 100))
        #expect(slice.rows.compactMap(ChatMessages.message(from:)).map(\.messageId) == ["m10", "m11", "m12", "m13"])
    }

    @Test func ttlExpiresCellsOnTheInjectedClock() throws {
        let dir = TempDirectory("ttl")
        let clock = ManualClock()
        var o = options()
        o.clock = clock
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        let now = clock.nowSeconds()
        let row = RowFragment(cells: [Cell(column: 0, timestamp: 1, value: [1], ttl: 10, expiresAt: now + 10)])
        let ck = ClusteringKey([.int64(1)]).bytes
        try engine.write(Mutation(table: 3, partitionKey: [1], rows: [.init(clustering: ck, fragment: row)]))
        let q = SliceQuery(table: 3, partitionKey: [1])
        #expect(try engine.read(q).rows.count == 1)
        clock.advance(seconds: 11)
        #expect(try engine.read(q).rows.isEmpty)
        try engine.compact()
        #expect(try engine.read(q).rows.isEmpty)
    }

    @Test func aDataDirectoryOpensOnlyOnce() throws {
        let dir = TempDirectory("lock")
        let engine = try StorageEngine.open(directory: dir.path, options: options())
        #expect(throws: StorageError.self) { _ = try StorageEngine.open(directory: dir.path, options: options()) }
        try engine.close()
        try StorageEngine.open(directory: dir.path, options: options()).close()
    }

    @Test func badInputIsRefusedWithAClearErrorAndStoresNothing() throws {
        let dir = TempDirectory("bad")
        let engine = try StorageEngine.open(directory: dir.path, options: options())
        defer { try? engine.close() }
        func code(_ body: () throws -> Void) -> StorageError.Code? {
            do { try body(); return nil } catch let e as StorageError { return e.code } catch { return nil }
        }
        #expect(code { try engine.write(Mutation(table: 1, partitionKey: [])) } == .invalidArgument)
        #expect(code { try engine.write(Mutation(table: 1, partitionKey: [1], rows: [.init(clustering: [], fragment: RowFragment())])) } == .invalidArgument)
        let huge = RowFragment(cells: [Cell(column: 0, timestamp: 1, value: [UInt8](repeating: 7, count: StorageEngine.maxMutationBytes + 1))])
        #expect(code { try engine.write(Mutation(table: 1, partitionKey: [1], rows: [.init(clustering: [1], fragment: huge)])) } == .tooLarge)
        #expect(try engine.read(SliceQuery(table: 1, partitionKey: [1])).rows.isEmpty)
        #expect(engine.stats.userBytesWritten == 0)
    }

    @Test func concurrentWritersInGroupModeAreAllDurable() throws {
        let dir = TempDirectory("group")
        let writer = try StorageEngine.open(directory: dir.path, options: options(.group, memtable: 64 << 10))
        let threads = 16, per = 100
        // Real threads: concurrentPerform would run only as many as there are cores.
        let done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            Thread {
                for i in 0..<per {
                    try! writer.write(ChatMessages.mutation(chatId: Int64(t), timestamp: Int64(i), messageId: "m", sender: "s", body: "b\(i)", writeTime: 1))
                }
                done.leave()
            }.start()
        }
        done.wait()
        let syncs = writer.wal.syncCount
        #expect(syncs < UInt64(threads * per / 2), "group commit shared too few fdatasyncs: \(syncs) syncs for \(threads * per) writes")
        try writer.close()
        let engine = try StorageEngine.open(directory: dir.path, options: options())
        for t in 0..<threads {
            #expect(try engine.read(ChatMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
        try engine.close()
    }

    @Test func writersAreHeldWhenFlushingFallsBehindAndMemoryStaysBounded() throws {
        let dir = TempDirectory("stall")
        var o = options(.periodic(milliseconds: 50), memtable: 16 << 10)
        o.maxFrozenMemtables = 1
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        var peak = 0
        for i in 0..<3_000 {
            try engine.write(ChatMessages.mutation(chatId: Int64(i % 7), timestamp: Int64(i), messageId: "m", sender: "s", body: String(repeating: "x", count: 200), writeTime: 1))
            if i % 100 == 0 { peak = max(peak, engine.stats.memtableBytes) }
        }
        // At most the active memtable plus one frozen, each a little over the threshold.
        #expect(peak <= 3 * (16 << 10) + (64 << 10))
        #expect(engine.stats.flushes > 10)
    }
}
