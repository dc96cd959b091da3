import Foundation
import Testing

@testable import ConfabEngine

/// Blocking writers are written in groups (`WriterQueue`): the writers that line up while a
/// group's fdatasync runs are written together by the first of them, and each learns the group's
/// outcome.
@Suite struct WriterGroupTests {
    /// While one write waits for its sync, a second is staged behind it (its WAL record queued for
    /// the next sync), and the 19 writers arriving after that line up and become one group: three
    /// groups in all. Nothing is readable before its sync; everything is after.
    @Test(arguments: [SyncMode.group, .batch])
    func writersLinedUpBehindTwoGroupsInFlightAreWrittenAsOneGroup(_ mode: SyncMode) throws {
        let (engine, fs, dir) = try Self.open(mode)
        defer {
            try? engine.close()
            _ = dir
        }
        let before = engine.stats
        fs.holdWALSyncs()
        let outcomes = LockedBox<[String: String]>([:])
        let done = DispatchGroup()
        Self.write(engine, ids: ["lead"], outcomes: outcomes, done: done)
        #expect(fs.waitUntilASyncIsHeld(timeout: 10), "the first write never reached its WAL sync")
        Self.write(engine, ids: ["second"], outcomes: outcomes, done: done)
        #expect(Self.waitUntil(timeout: 10) { engine.writers.groupsInFlight == 2 }, "the second write was not staged")
        let followers = (0..<19).map { "w\($0)" }
        Self.write(engine, ids: followers, outcomes: outcomes, done: done)
        #expect(Self.waitUntil(timeout: 10) { engine.writers.waiting == 19 }, "the writers never lined up")
        #expect(engine.writers.groupsInFlight == 2)
        #expect(try Self.readable(engine).isEmpty, "a write was readable before its WAL sync returned")

        fs.releaseWALSyncs()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(outcomes.get().values.allSatisfy { $0 == "ok" }, "\(outcomes.get())")
        let after = engine.stats
        #expect(after.writeGroups - before.writeGroups == 3)
        #expect(after.groupedWriters - before.groupedWriters == 21)
        #expect(try Self.readable(engine) == Set(followers + ["lead", "second"]))
    }

    /// A sync that fails fails its own group and, the log being stopped, the groups behind it (the
    /// one staged and the one in line): every one of the 21 writers gets an error, and none of their
    /// writes is readable.
    @Test func aFailedSyncFailsEveryWriterOfTheGroupsItStops() throws {
        let (engine, fs, dir) = try Self.open(.group)
        defer {
            try? engine.close()
            _ = dir
        }
        fs.holdWALSyncs()
        let outcomes = LockedBox<[String: String]>([:])
        let done = DispatchGroup()
        Self.write(engine, ids: ["lead"], outcomes: outcomes, done: done)
        #expect(fs.waitUntilASyncIsHeld(timeout: 10))
        Self.write(engine, ids: ["second"], outcomes: outcomes, done: done)
        #expect(Self.waitUntil(timeout: 10) { engine.writers.groupsInFlight == 2 })
        Self.write(engine, ids: (0..<19).map { "w\($0)" }, outcomes: outcomes, done: done)
        #expect(Self.waitUntil(timeout: 10) { engine.writers.waiting == 19 })

        fs.releaseFailingHeldSyncs()
        #expect(done.wait(timeout: .now() + 10) == .success)
        let results = outcomes.get()
        #expect(results.count == 21 && results.values.allSatisfy { $0 != "ok" }, "\(results)")
        #expect(try Self.readable(engine).isEmpty)
    }

    /// Many threads at once, groups forming as they may: every write that returned is readable,
    /// also after reopening, and groups held more than one writer on average.
    @Test func concurrentWritersAreAllReadableAndShareGroups() throws {
        let dir = TempDirectory("writer-groups")
        var o = EngineOptions()
        o.syncMode = .group
        o.memtableBytes = 64 << 10
        let threads = 32
        let per = 60
        do {
            let engine = try StorageEngine.open(directory: dir.path, options: o)
            writeFromThreads(engine, threads: threads, perThread: per, body: "b")
            let s = engine.stats
            #expect(s.groupedWriters == UInt64(threads * per))
            #expect(s.writeGroups < s.groupedWriters, "no group held two writers: \(s.writeGroups) groups")
            try engine.close()
        }
        let reopened = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? reopened.close() }
        for t in 0..<threads {
            #expect(try reopened.read(TestMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
    }

    static func open(_ mode: SyncMode) throws -> (StorageEngine, SyncGateFileSystem, TempDirectory) {
        let dir = TempDirectory("writer-group")
        let fs = SyncGateFileSystem()
        var o = EngineOptions()
        o.syncMode = mode
        o.fileSystem = fs
        o.backgroundWork = false
        return (try StorageEngine.open(directory: dir.path, options: o), fs, dir)
    }

    /// Each id written by its own thread into chat 1; its outcome ("ok" or the error) recorded.
    static func write(
        _ engine: StorageEngine, ids: [String], outcomes: LockedBox<[String: String]>, done: DispatchGroup
    ) {
        for (n, id) in ids.enumerated() {
            done.enter()
            Thread {
                do {
                    try engine.write(
                        TestMessages.mutation(
                            chatId: 1, timestamp: Int64(n + 1), messageId: id, sender: "s", body: "b", writeTime: 1))
                    outcomes.update { $0[id] = "ok" }
                } catch {
                    outcomes.update { $0[id] = "\(error)" }
                }
                done.leave()
            }.start()
        }
    }

    static func readable(_ engine: StorageEngine) throws -> Set<String> {
        Set(
            try engine.read(TestMessages.latest(chatId: 1, limit: 100)).rows.compactMap(TestMessages.message(from:))
                .map(\.messageId))
    }

    /// Polls `condition` every millisecond until it holds or `timeout` seconds pass.
    static func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !condition() {
            if Date() > deadline { return false }
            usleep(1000)
        }
        return true
    }
}
