import ConfabTestSupport
import Testing

@testable import ConfabEngine

/// A flushed table's blocks go into the block cache (`EngineOptions.cacheFlushedTables`), so the
/// first read of the newest messages after a flush loads nothing.
@Suite struct FlushedTableCacheTests {
    private func run(cacheFlushed: Bool, cacheBytes: Int = 128 << 20) throws -> (
        cached: Int, blocks: Int, misses: UInt64
    ) {
        let dir = TempDirectory("flushed-cache")
        var o = EngineOptions()
        o.syncMode = .batch
        o.backgroundWork = false
        o.blockBytes = 1 << 10
        o.blockCacheBytes = cacheBytes
        o.cacheFlushedTables = cacheFlushed
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        for i in 0..<600 {
            let chat = Int64(i % 6)
            try engine.write(
                TestMessages.mutation(
                    chatId: chat, timestamp: Int64(i), messageId: "m\(i)", sender: "s",
                    body: String(repeating: "b", count: 100),
                    writeTime: Int64(i) * 1_000))
        }
        try engine.flush()
        let table = try #require(engine.state.withLock { engine.tables.first })
        let cached = engine.blockCache.count(fileNumber: table.fileNumber)
        let before = engine.blockCache.misses
        for chat in 0..<6 {
            let rows = try engine.read(TestMessages.latest(chatId: Int64(chat), limit: 50)).rows
            #expect(rows.count == 50)
        }
        return (cached, table.blockCount, engine.blockCache.misses - before)
    }

    @Test func aFlushedTableIsReadWithoutLoadingABlock() throws {
        let r = try run(cacheFlushed: true)
        #expect(r.blocks > 20)
        #expect(r.cached == r.blocks)
        #expect(r.misses == 0)
    }

    @Test func withoutItTheFirstReadsLoadBlocks() throws {
        let r = try run(cacheFlushed: false)
        #expect(r.cached == 0)
        #expect(r.misses > 0)
    }

    /// A table bigger than half the cache is not loaded: it would push out what readers use.
    @Test func aTableLargerThanHalfTheCacheIsNotLoaded() throws {
        let r = try run(cacheFlushed: true, cacheBytes: 40 << 10)
        #expect(r.cached == 0)
    }
}
