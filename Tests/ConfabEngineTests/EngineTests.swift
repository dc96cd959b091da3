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
            try engine.write(
                TestMessages.mutation(
                    chatId: 9, timestamp: Int64(i), messageId: "m\(i)", sender: "ada", body: body + "\(i)", writeTime: 1
                ))
        }
        func check() throws {
            let rows = try engine.read(TestMessages.latest(chatId: 9, limit: 10)).rows.compactMap(
                TestMessages.message(from:))
            #expect(rows.map(\.messageId) == ["m4", "m3", "m2", "m1", "m0"])
            for m in rows { #expect(m.body == body + m.messageId.dropFirst()) }
        }
        try check()  // from the memtable
        try engine.close()
        engine = try StorageEngine.open(directory: dir.path, options: options())
        try check()  // replayed from the WAL
        try engine.flush()
        try check()  // from an SSTable
        try engine.close()
        engine = try StorageEngine.open(directory: dir.path, options: options())
        try check()
        try engine.close()
    }

    @Test func latestAndDeepPagesOfALargeChat() throws {
        let dir = TempDirectory("deep")
        let engine = try StorageEngine.open(
            directory: dir.path, options: options(.periodic(milliseconds: 20), memtable: 256 << 10))
        defer { try? engine.close() }
        let n = 20_000
        var batch: [Mutation] = []
        for i in 0..<n {
            batch.append(
                TestMessages.mutation(
                    chatId: 1, timestamp: Int64(i) * 10, messageId: "m\(i)", sender: "s", body: "body \(i)",
                    writeTime: 1))
            batch.append(
                TestMessages.mutation(
                    chatId: Int64(2 + i % 50), timestamp: Int64(i), messageId: "x\(i)", sender: "s", body: "other",
                    writeTime: 1))
            if batch.count >= 200 {
                try engine.write(batch)
                batch.removeAll()
            }
        }
        try engine.write(batch)
        try engine.waitForBackgroundWork()
        #expect(engine.stats.flushes > 0)
        let latest = try engine.read(TestMessages.latest(chatId: 1, limit: 50)).rows.compactMap(
            TestMessages.message(from:))
        #expect(latest.map(\.messageId) == (0..<50).map { "m\(n - 1 - $0)" })
        // 15,000 messages back: before timestamp of message 5,000.
        let deep = try engine.read(TestMessages.latest(chatId: 1, before: 5_000 * 10, limit: 50))
        #expect(deep.rows.compactMap(TestMessages.message(from:)).map(\.messageId) == (0..<50).map { "m\(4_999 - $0)" })
        // Paging with the cursor continues exactly where the last page stopped.
        var q = TestMessages.latest(chatId: 1, before: 5_000 * 10, limit: 50)
        q.cursor = deep.cursor
        let next = try engine.read(q).rows.compactMap(TestMessages.message(from:))
        #expect(next.first?.messageId == "m4949")
        // Ascending slice with both bounds.
        let slice = try engine.read(
            SliceQuery(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 1),
                lower: ClusteringBound(ClusteringKey([.int64(100)]), inclusive: true),
                upper: ClusteringBound(ClusteringKey([.int64(130)]), inclusive: true), limit: 100))
        #expect(slice.rows.compactMap(TestMessages.message(from:)).map(\.messageId) == ["m10", "m11", "m12", "m13"])
    }

    @Test func ttlExpiresCellsOnTheInjectedClock() throws {
        let dir = TempDirectory("ttl")
        let clock = ManualClock()
        var o = options()
        o.clock = clock
        o.gcGraceSeconds = 30
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        let now = clock.nowSeconds()
        let row = RowFragment(cells: [Cell(column: 0, timestamp: 1, value: [1], ttl: 10, expiresAt: now + 10)])
        let ck = ClusteringKey([.int64(1)]).bytes
        try engine.write(Mutation(table: 3, partitionKey: [1], rows: [.init(clustering: ck, fragment: row)]))
        let q = SliceQuery(table: 3, partitionKey: [1])
        try engine.flush()
        #expect(engine.sstablePaths.count == 1)
        #expect(try engine.read(q).rows.count == 1)
        clock.advance(seconds: 11)
        #expect(try engine.read(q).rows.isEmpty)

        // Expired but within the grace period: compaction (of the single table) turns the cell
        // into a tombstone and keeps it.
        try engine.compact()
        #expect(engine.stats.compactions == 1)
        #expect(try engine.read(q).rows.isEmpty)
        let raw = try engine.readRaw(q).rows
        #expect(raw.count == 1)
        #expect(raw.first?.fragment.cells.first?.isTombstone == true)
        #expect(raw.first?.fragment.cells.first?.localExpiry == now + 10)

        // Past the grace period: the next compaction purges it, and nothing is left on disk.
        clock.advance(seconds: 30)
        try engine.compact()
        #expect(engine.stats.compactions == 2)
        #expect(engine.sstablePaths.isEmpty)
        #expect(try engine.readRaw(q).rows.isEmpty)
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
            do {
                try body()
                return nil
            } catch let e as StorageError { return e.code } catch { return nil }
        }
        #expect(code { try engine.write(Mutation(table: 1, partitionKey: [])) } == .invalidArgument)
        #expect(
            code {
                try engine.write(
                    Mutation(table: 1, partitionKey: [1], rows: [.init(clustering: [], fragment: RowFragment())]))
            } == .invalidArgument)
        let huge = RowFragment(cells: [
            Cell(column: 0, timestamp: 1, value: [UInt8](repeating: 7, count: StorageEngine.maxMutationBytes + 1))
        ])
        #expect(
            code {
                try engine.write(Mutation(table: 1, partitionKey: [1], rows: [.init(clustering: [1], fragment: huge)]))
            } == .tooLarge)
        #expect(try engine.read(SliceQuery(table: 1, partitionKey: [1])).rows.isEmpty)
        #expect(engine.stats.userBytesWritten == 0)
    }

    @Test func concurrentWritersInGroupModeAreAllDurable() throws {
        let dir = TempDirectory("group")
        let fs = try FaultInjectingFileSystem(root: dir.path)
        var o = options(.group, memtable: 64 << 10)
        o.fileSystem = fs
        let writer = try StorageEngine.open(directory: dir.file("data"), options: o)
        let threads = 16
        let per = 100
        // Real threads: concurrentPerform would run only as many as there are cores.
        let done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            Thread {
                for i in 0..<per {
                    try! writer.write(
                        TestMessages.mutation(
                            chatId: Int64(t), timestamp: Int64(i), messageId: "m", sender: "s", body: "b\(i)",
                            writeTime: 1))
                }
                done.leave()
            }.start()
        }
        done.wait()
        let syncs = writer.wal.syncCount
        #expect(
            syncs < UInt64(threads * per / 2),
            "group commit shared too few fdatasyncs: \(syncs) syncs for \(threads * per) writes")
        // Every write was acknowledged; the machine loses power without a clean close, keeping
        // only what was synced.
        let rebooted = try powerLoss(fs, dataDir: dir.file("data"), next: dir.file("rebooted"), abandoning: writer)
        var after = options()
        after.fileSystem = try FaultInjectingFileSystem(root: dir.path)
        let engine = try StorageEngine.open(directory: rebooted, options: after)
        for t in 0..<threads {
            #expect(try engine.read(TestMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
        try engine.close()
    }

    @Test func writersAreHeldWhenFlushingFallsBehindAndMemoryStaysBounded() throws {
        let dir = TempDirectory("stall")
        let fs = SyncGateFileSystem()
        var o = options(.periodic(milliseconds: 50), memtable: 16 << 10)
        o.maxFrozenMemtables = 1
        o.fileSystem = fs
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        // Flushes cannot finish (their SSTable fsync is held), so a writer must end up held.
        fs.hold(matching: ".tmp")
        let finished = DispatchSemaphore(value: 0)
        let failure = LockedBox<String?>(nil)
        Thread {
            do {
                for i in 0..<3_000 {
                    try engine.write(
                        TestMessages.mutation(
                            chatId: Int64(i % 7), timestamp: Int64(i), messageId: "m", sender: "s",
                            body: String(repeating: "x", count: 200), writeTime: 1))
                }
            } catch {
                failure.set("\(error)")
            }
            finished.signal()
        }.start()
        let deadline = Date(timeIntervalSinceNow: 20)
        var finishedEarly = false
        while engine.stats.writesStalled == 0 && Date() < deadline {
            // Polls the condition; the writer cannot finish while flushes are held.
            if finished.wait(timeout: .now() + 0.01) == .success {
                finishedEarly = true
                break
            }
        }
        #expect(!finishedEarly, "all writes went through while no flush could finish: \(failure.get() ?? "no error")")
        #expect(engine.stats.writesStalled > 0, "no writer was held while the flush could not finish")
        // Held: the active memtable plus one frozen, each a little over the threshold.
        #expect(engine.stats.memtableBytes <= 3 * (16 << 10) + (64 << 10))
        fs.releaseAll()
        #expect(finishedEarly || finished.wait(timeout: .now() + 60) == .success)
        #expect(failure.get() == nil)
        #expect(engine.stats.flushes > 10)
        #expect(engine.stats.stallMicros > 0)
    }

    /// The async write path is held the same way, parked on a continuation (no polling): it
    /// resumes when a flush makes room, and its writes all land.
    @Test func asyncWritersAreHeldWhenFlushingFallsBehindAndResumeWhenItCatchesUp() async throws {
        let dir = TempDirectory("stall-async")
        let fs = SyncGateFileSystem()
        var o = options(.periodic(milliseconds: 50), memtable: 4 << 10)
        o.maxFrozenMemtables = 1
        o.fileSystem = fs
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        fs.hold(matching: ".tmp")
        // The flushes stay held until a writer is parked for room (or every write is in). A plain
        // thread watches for that, not a task: the cooperative pool is shared with the suite's
        // blocking crash and simulation work and may not run a watcher for minutes.
        let writerDone = Locked(false)
        let seenAtRelease = Locked<(stalled: UInt64, memtableBytes: Int)?>(nil)
        let releaser = Thread {
            // Bounded, so a writer that spins instead of parking fails the test instead of hanging it.
            let giveUp = Date(timeIntervalSinceNow: 900)
            while engine.stats.writesStalled == 0 && !writerDone.current && Date() < giveUp {
                Thread.sleep(forTimeInterval: 0.005)  // polls the engine's own counter
            }
            seenAtRelease.withLock { $0 = (engine.stats.writesStalled, engine.stats.memtableBytes) }
            fs.releaseAll()
        }
        releaser.start()
        // The test body is the async writer: a parked write needs no thread until a flush resumes it.
        let writes = 600
        for i in 0..<writes {
            try await engine.write(
                TestMessages.mutation(
                    chatId: Int64(i % 7), timestamp: Int64(i), messageId: "m", sender: "s",
                    body: String(repeating: "x", count: 200), writeTime: 1))
        }
        writerDone.withLock { $0 = true }
        while seenAtRelease.current == nil { try await Task.sleep(for: .milliseconds(5)) }
        let seen = try #require(seenAtRelease.current)
        #expect(seen.stalled > 0, "every write went through while no flush could finish")
        #expect(seen.memtableBytes <= 3 * (4 << 10) + (64 << 10))
        var stored = 0
        for chat in 0..<7 {
            stored += try engine.read(TestMessages.latest(chatId: Int64(chat), limit: 10_000)).rows.count
        }
        #expect(stored == writes)
        #expect(engine.stats.stallMicros > 0)
    }

    /// Every level of a new data directory gets a durable entry in its parent: after a power
    /// loss, acknowledged writes are not lost with a directory name that was never fsynced.
    @Test func aNewNestedDataDirectorySurvivesPowerLoss() throws {
        let dir = TempDirectory("nested")
        let fs = try FaultInjectingFileSystem(root: dir.path)
        var o = options(.group)
        o.fileSystem = fs
        let data = dir.file("x/y/data")
        let engine = try StorageEngine.open(directory: data, options: o)
        try engine.write(
            TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "m", sender: "s", body: "kept", writeTime: 1))
        try fs.simulatePowerLoss()
        try? engine.close()
        #expect(
            FileManager.default.fileExists(atPath: data), "the data directory vanished: its parents were never fsynced")
        // Recovery runs on a copy: the abandoned engine still holds the LOCK.
        try FileManager.default.copyItem(atPath: data, toPath: dir.file("copy"))
        var after = options()
        after.fileSystem = try FaultInjectingFileSystem(root: dir.path)
        let recovered = try StorageEngine.open(directory: dir.file("copy"), options: after)
        defer { try? recovered.close() }
        #expect(try recovered.read(TestMessages.latest(chatId: 1, limit: 10)).rows.count == 1)
    }

    @Test func aFailedParentSyncFailsTheOpenOfANewDataDirectory() throws {
        let dir = TempDirectory("parent-sync")
        let fs = try FaultInjectingFileSystem(root: dir.path)
        var o = options()
        o.fileSystem = fs
        fs.failDirectorySyncs(count: 1)
        let error = try #require(throws: StorageError.self) {
            _ = try StorageEngine.open(directory: dir.file("data"), options: o)
        }
        #expect(error.code == .io)
        #expect(error.message.contains("durable"))
    }

    /// A table alone in its time window is never merged with another, yet its tombstones and
    /// expired values must go once past the grace period (Cassandra's single-SSTable tombstone
    /// compaction).
    @Test func aSingleTablesTombstonesArePurgedByBackgroundCompaction() throws {
        let dir = TempDirectory("single-purge")
        let clock = ManualClock()
        var o = options()
        o.clock = clock
        o.gcGraceSeconds = 30
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        let now = clock.nowSeconds()
        for i in 0..<20 {
            let ck = ClusteringKey([.int64(Int64(i))]).bytes
            let fragment =
                i % 2 == 0
                ? RowFragment(cells: [Cell(column: 0, timestamp: 5, value: [1])])
                : RowFragment(deletion: DeletionTime(timestamp: 5, localDeletionTime: now))
            try engine.write(
                Mutation(table: 3, partitionKey: [UInt8(i % 3 + 1)], rows: [.init(clustering: ck, fragment: fragment)]))
        }
        try engine.flush()
        #expect(engine.stats.compactions == 0)
        try engine.waitForBackgroundWork()
        #expect(engine.stats.compactions == 0, "compacted before the grace period passed")
        clock.advance(seconds: 31)
        try engine.waitForBackgroundWork()
        #expect(engine.stats.compactions == 1)
        let paths = engine.sstablePaths
        #expect(paths.count == 1)
        var live = 0
        var deleted = 0
        for pk in 1...3 {
            for row in try engine.readRaw(SliceQuery(table: 3, partitionKey: [UInt8(pk)], limit: 100)).rows {
                if row.fragment.deletion != nil { deleted += 1 } else { live += 1 }
            }
        }
        #expect(live == 10)
        #expect(deleted == 0)
        // Nothing left to purge: the strategy does not pick the table again.
        try engine.waitForBackgroundWork()
        #expect(engine.stats.compactions == 1)
    }

    /// Older data for the same partitions in another table keeps the tombstones (they still shadow
    /// it), and the strategy must not rewrite the table over and over.
    @Test func aSingleTableCompactionIsNotPickedWhileOlderDataOverlaps() throws {
        let dir = TempDirectory("single-blocked")
        let clock = ManualClock()
        var o = options()
        o.clock = clock
        o.gcGraceSeconds = 30
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        let ck = ClusteringKey([.int64(1)]).bytes
        try engine.write(
            Mutation(
                table: 3, partitionKey: [1],
                rows: [.init(clustering: ck, fragment: RowFragment(cells: [Cell(column: 0, timestamp: 5, value: [1])]))]
            ))
        try engine.flush()
        try engine.write(
            Mutation(
                table: 3, partitionKey: [1],
                rows: [
                    .init(
                        clustering: ck,
                        fragment: RowFragment(
                            deletion: DeletionTime(timestamp: 6, localDeletionTime: clock.nowSeconds())))
                ]))
        try engine.flush()
        clock.advance(seconds: 31)
        try engine.waitForBackgroundWork()  // returns: nothing is due
        #expect(engine.stats.compactions == 0)
        #expect(try engine.read(SliceQuery(table: 3, partitionKey: [1])).rows.isEmpty)
    }

    @Test func compactedAwayTablesLeaveTheBlockCache() throws {
        let dir = TempDirectory("cache-evict")
        var o = options()
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        for round in 0..<2 {
            for i in 0..<200 {
                try engine.write(
                    TestMessages.mutation(
                        chatId: Int64(i % 5), timestamp: Int64(round * 1000 + i), messageId: "m", sender: "s",
                        body: String(repeating: "x", count: 100), writeTime: 1))
            }
            try engine.flush()
        }
        let before = engine.state.withLock { engine.tables.map(\.fileNumber) }
        #expect(before.count == 2)
        for chat in 0..<5 { _ = try engine.read(TestMessages.latest(chatId: Int64(chat), limit: 1000)) }
        #expect(before.allSatisfy { engine.blockCache.count(fileNumber: $0) > 0 })
        try engine.compact()
        #expect(engine.stats.compactions == 1)
        for n in before {
            #expect(engine.blockCache.count(fileNumber: n) == 0, "blocks of compacted-away table \(n) are still cached")
        }
        for chat in 0..<5 {
            #expect(try engine.read(TestMessages.latest(chatId: Int64(chat), limit: 1000)).rows.count == 80)
        }
    }
}

/// Slice reads open SSTables lazily, nearest clustering edge first (StorageEngine.mergeSlice).
@Suite struct LazyTableOpeningTests {
    /// Three tables of one chat, each holding a later stretch of time: the newest 50 come from the
    /// newest table alone, 150 need two, the oldest 10 (forward) need the oldest table only, and
    /// every answer is the one a read of all tables gives.
    @Test func aPageFilledFromNewerTablesOpensNoOlderOne() throws {
        let dir = TempDirectory("lazy-tables")
        var o = EngineOptions()
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        for stretch in 0..<3 {
            for i in 0..<100 {
                let ts = Int64(stretch * 100 + i + 1)
                try engine.write(
                    TestMessages.mutation(
                        chatId: 7, timestamp: ts, messageId: "m\(ts)", sender: "s", body: "b", writeTime: ts))
            }
            try engine.flush()
        }
        #expect(engine.stats.sstableCount == 3)
        func opened(_ query: SliceQuery) throws -> (UInt64, [Int64]) {
            let before = engine.stats.sstablesOpenedByReads
            let rows = try engine.read(query).rows.compactMap(TestMessages.message(from:)).map(\.timestamp)
            return (engine.stats.sstablesOpenedByReads - before, rows)
        }
        let (newest, newestRows) = try opened(TestMessages.latest(chatId: 7, limit: 50))
        #expect(newest == 1 && newestRows == Array((251...300).reversed()))
        let (more, moreRows) = try opened(TestMessages.latest(chatId: 7, limit: 150))
        #expect(more == 2 && moreRows == Array((151...300).reversed()))
        var forward = TestMessages.latest(chatId: 7, limit: 10)
        forward.reversed = false
        let (oldest, oldestRows) = try opened(forward)
        #expect(oldest == 1 && oldestRows == Array(1...10))
        let (all, allRows) = try opened(TestMessages.latest(chatId: 7, limit: 1000))
        #expect(all == 3 && allRows == Array((1...300).reversed()))
    }
}
