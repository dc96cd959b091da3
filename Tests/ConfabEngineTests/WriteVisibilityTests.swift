import Foundation
import Testing

@testable import ConfabEngine

/// A write becomes readable only once its WAL record is durable: a replica must never serve a row
/// that a crash could still lose.
@Suite struct WriteVisibilityTests {
    @Test(arguments: [SyncMode.group, .batch])
    func aWriteIsInvisibleUntilItsWALSyncReturns(_ mode: SyncMode) throws {
        let dir = TempDirectory("visibility")
        let fs = SyncGateFileSystem()
        var o = EngineOptions()
        o.syncMode = mode
        o.fileSystem = fs
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? engine.close() }
        try engine.write(
            TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "before", sender: "s", body: "b", writeTime: 1))

        fs.holdWALSyncs()
        let finished = DispatchSemaphore(value: 0)
        let failure = LockedBox<String?>(nil)
        Thread {
            do {
                try engine.write(
                    TestMessages.mutation(
                        chatId: 1, timestamp: 2, messageId: "held", sender: "s", body: "b", writeTime: 1))
            } catch {
                failure.set("\(error)")
            }
            finished.signal()
        }.start()
        #expect(fs.waitUntilASyncIsHeld(timeout: 10), "the write never reached its WAL sync")

        // The record is appended (and written, in group mode) but its fdatasync has not returned.
        let during = try engine.read(TestMessages.latest(chatId: 1, limit: 10)).rows.compactMap(
            TestMessages.message(from:))
        #expect(during.map(\.messageId) == ["before"], "a write was readable before its WAL record was synced")

        fs.releaseWALSyncs()
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(failure.get() == nil)
        let after = try engine.read(TestMessages.latest(chatId: 1, limit: 10)).rows.compactMap(
            TestMessages.message(from:))
        #expect(after.map(\.messageId) == ["held", "before"])
    }

    /// Writers racing a memtable freeze and flush: every write lands in the SSTable of the memtable
    /// that was active when it was appended, or in a later one; none is lost when its WAL segment
    /// is deleted after the flush.
    @Test func writesPendingAcrossAFreezeReachTheFlushedTable() throws {
        let dir = TempDirectory("pending-freeze")
        var o = EngineOptions()
        o.syncMode = .group
        o.memtableBytes = 8 << 10
        o.maxFrozenMemtables = 4
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        let threads = 8
        let per = 150
        writeFromThreads(engine, threads: threads, perThread: per, body: String(repeating: "x", count: 100))
        try engine.flush()
        #expect(engine.stats.flushes > 5)
        for t in 0..<threads {
            #expect(try engine.read(TestMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
        try engine.close()
        // Everything is in SSTables now; the WAL holds nothing that is not.
        let reopened = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? reopened.close() }
        for t in 0..<threads {
            #expect(try reopened.read(TestMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
    }
}

/// A value behind a lock.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ v: Value) { lock.withLock { value = v } }
    func update<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

/// The real file system, except that while held, syncs of WAL segments (or of other files chosen
/// by suffix) block until released, so a test can look at the engine while a write waits for its
/// fdatasync or a flush cannot finish.
final class SyncGateFileSystem: FileSystem, @unchecked Sendable {
    private let base = PosixFileSystem()
    private let condition = NSCondition()
    private var holding = false
    private var suffix = ".log"
    private var held = 0
    private var failHeld = false

    func holdWALSyncs() { hold(matching: ".log") }

    /// Holds syncs of files whose path ends with `pathSuffix` (".tmp": SSTables being written).
    func hold(matching pathSuffix: String) {
        condition.withLock {
            holding = true
            suffix = pathSuffix
        }
    }

    func releaseWALSyncs() { releaseAll() }

    func releaseAll() {
        condition.withLock {
            holding = false
            condition.broadcast()
        }
    }

    /// Releases the held syncs, which then fail with an I/O error instead of syncing.
    func releaseFailingHeldSyncs() {
        condition.withLock {
            failHeld = true
            holding = false
            condition.broadcast()
        }
    }

    /// Waits (up to `timeout` seconds) until a WAL sync is blocked at the gate.
    func waitUntilASyncIsHeld(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        return condition.withLock {
            while held == 0 {
                if !condition.wait(until: deadline) { return held > 0 }
            }
            return true
        }
    }

    fileprivate func gate(_ path: String) throws {
        try condition.withLock {
            guard holding, path.hasSuffix(suffix) else { return }
            held += 1
            condition.broadcast()
            while holding { condition.wait() }
            held -= 1
            if failHeld {
                failHeld = false
                throw StorageError(.io, "injected: the held fdatasync failed", path: path)
            }
        }
    }

    final class File: WritableFile, @unchecked Sendable {
        let inner: any WritableFile
        unowned let owner: SyncGateFileSystem
        init(_ inner: any WritableFile, owner: SyncGateFileSystem) {
            self.inner = inner
            self.owner = owner
        }
        var path: String { inner.path }
        var size: Int { inner.size }
        func append(_ bytes: UnsafeRawBufferPointer) throws { try inner.append(bytes) }
        func sync() throws {
            try owner.gate(path)
            try inner.sync()
        }
        func close() throws { try inner.close() }
    }

    func createFile(_ path: String, truncate: Bool) throws -> any WritableFile {
        File(try base.createFile(path, truncate: truncate), owner: self)
    }
    func openForAppend(_ path: String) throws -> any WritableFile { File(try base.openForAppend(path), owner: self) }
    func openForReading(_ path: String) throws -> any ReadableFile { try base.openForReading(path) }
    func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    func remove(_ path: String) throws { try base.remove(path) }
    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func fileSize(_ path: String) throws -> Int { try base.fileSize(path) }
    func truncate(_ path: String, to size: Int) throws { try base.truncate(path, to: size) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }
}

/// `threads` threads each write `perThread` messages into their own chat (thread t: chat t, times
/// 0..<perThread) through the blocking write, and this returns when all have.
func writeFromThreads(_ engine: StorageEngine, threads: Int, perThread: Int, body: String) {
    let done = DispatchGroup()
    for t in 0..<threads {
        done.enter()
        Thread {
            for i in 0..<perThread {
                try! engine.write(
                    TestMessages.mutation(
                        chatId: Int64(t), timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: body,
                        writeTime: 1))
            }
            done.leave()
        }.start()
    }
    done.wait()
}
