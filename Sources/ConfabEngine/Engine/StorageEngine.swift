import Foundation
import Logging
import Synchronization

/// A single-node LSM store: write-ahead log, memtable, SSTables, manifest, background compaction.
///
/// Guarantees: `write` returns after the mutation is durable per `EngineOptions.syncMode`
/// (fdatasynced for `batch` and `group`; for `periodic`, within one period). A mutation is
/// applied atomically: after a crash all of it or none of it is visible. Reads see every write
/// that has returned. Thread-safe; writers block only while the WAL syncs or, when flushing falls
/// behind, until a memtable is flushed (a write stall, counted in `stats` and metrics).
public final class StorageEngine: @unchecked Sendable {
    let directory: String
    let options: EngineOptions
    let fs: any FileSystem
    let blockCache: BlockCache
    let wal: WriteAheadLog
    let metrics = EngineMetrics()
    /// SSTables whose iterators slice reads opened (`EngineStats.sstablesOpenedByReads`).
    let readTableOpens = Atomic<UInt64>(0)
    let logger = Logger(label: "confab.engine")
    private let lockFile: DirectoryLock

    /// Guards everything below; `stateChanged` signals background threads and stalled writers.
    let state = BlockingMutex()
    let stateChanged: BlockingCondition
    var active: Memtable
    var frozen: [FrozenMemtable] = []
    /// Live SSTables, newest (highest file number) first.
    var tables: [SSTableReader] = []
    var manifest: Manifest
    var closed = false
    var compacting: Set<UInt64> = []
    var backgroundError: (any Error)?
    var counters = EngineStats()
    var nextMemtableID: UInt64 = 1
    var compactionRequested = false
    var runningBackground = 0
    /// Async writers waiting for room (too many frozen memtables), resumed by `wakeLocked()`
    /// whenever what they wait on changes: a flush finished, the engine closed, a background
    /// error. They re-check, so a spurious wake costs one check.
    var roomWaiters: [CheckedContinuation<Void, Never>] = []

    /// Serializes WAL appends with memtable inserts, so WAL order and segment boundaries match
    /// memtable boundaries exactly.
    let writeLock = BlockingMutex()
    /// Blocking writers line up here and are written in groups.
    let writers = WriterQueue()
    /// Serializes manifest replacement between the flush and compaction threads.
    let manifestLock = BlockingMutex()
    /// Held for the duration of a compaction (background or major).
    let compactionLock = BlockingMutex()
    /// Held while flushing, so flushes happen one at a time and in memtable order.
    let flushLock = BlockingMutex()
    let threadsDone = DispatchGroup()

    struct FrozenMemtable {
        var memtable: Memtable
        /// The first WAL segment holding data of any newer memtable; once this memtable is in an
        /// SSTable, every segment below it can be deleted.
        var nextLogNumber: UInt64
    }

    /// Most a single mutation may carry (the WAL frames records up to 64 MiB).
    public static let maxMutationBytes = 32 << 20

    init(
        directory: String, options: EngineOptions, lock: DirectoryLock, manifest: Manifest, tables: [SSTableReader],
        replayed: [FrozenMemtable], walFirstSegment: UInt64, blockCache: BlockCache
    ) throws {
        self.directory = directory
        self.stateChanged = BlockingCondition(state)
        self.options = options
        self.fs = options.fileSystem
        self.lockFile = lock
        self.manifest = manifest
        self.tables = tables
        self.frozen = replayed
        self.blockCache = blockCache
        self.nextMemtableID = UInt64(replayed.count) + 2
        self.active = Memtable(id: UInt64(replayed.count) + 1, capacityBytes: options.memtableBytes)
        self.wal = try WriteAheadLog(
            directory: directory, fileSystem: options.fileSystem, syncMode: options.syncMode,
            segmentBytes: options.walSegmentBytes, firstSegmentID: walFirstSegment, groupCommit: options.groupCommit)
        counters.sstableCount = tables.count
    }

    // MARK: Writing

    /// Durable per the sync mode when it returns. Blocks the calling thread during the sync; use
    /// the async overload from Swift concurrency.
    public func write(_ mutation: Mutation) throws {
        try write([mutation])
    }

    /// Writes each mutation atomically (the batch as a whole is not atomic) and returns when all
    /// are durable.
    ///
    /// Concurrent callers are written in groups (`WriterQueue`): the first in line writes the
    /// others' mutations with its own, so 64 threads cost a few groups per sync, not 64 passes
    /// through every lock.
    public func write(_ mutations: [Mutation]) throws {
        guard !mutations.isEmpty else { return }
        let payloads = try mutations.map { try Self.validatedEncoding($0) }
        try waitForRoom()
        try writers.write(
            mutations, payloads,
            stage: { mutations, payloads in (try append(mutations, payloads), mutations, payloads) },
            finish: { pending, mutations, payloads in
                do {
                    try wal.waitDurable(pending.ticket)
                } catch {
                    pending.memtable.endWrite()
                    throw error
                }
                try applyDurable(pending, mutations, payloads)
            })
    }

    /// The same as `write(_:)` without blocking a Swift-concurrency thread.
    public func write(_ mutation: Mutation) async throws {
        let payload = try Self.validatedEncoding(mutation)
        var stalledSince: UInt64?
        defer {
            if let start = stalledSince {
                let waited = DispatchTime.now().uptimeNanoseconds - start
                state.withLock { counters.stallMicros += waited / 1000 }
                metrics.stallTime.recordNanoseconds(Int64(waited))
            }
        }
        while try needsRoom() {
            if stalledSince == nil {
                stalledSince = DispatchTime.now().uptimeNanoseconds
                state.withLock { counters.writesStalled += 1 }
                metrics.stalls.increment()
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { () -> Bool in
                    // Checked again under the lock, so a flush that finished since is not missed.
                    if closed || backgroundError != nil || frozen.count < options.maxFrozenMemtables { return true }
                    roomWaiters.append(c)
                    return false
                }
                if ready { c.resume() }
            }
        }
        let pending = try append([mutation], [payload])
        do {
            try await wal.waitDurable(pending.ticket)
        } catch {
            pending.memtable.endWrite()
            throw error
        }
        try applyDurable(pending, [mutation], [payload])
    }

    /// The same write for callers that may block nothing, an event loop above all: staging is a
    /// memory copy (the WAL is appended in memory; its sync thread writes and fdatasyncs it), then
    /// `apply` is handed the step that makes the write visible once it is durable, to run on the
    /// caller's executor (`{ loop.execute($0) }`) rather than on the sync thread, whose next
    /// fdatasync would wait for it. `done` runs exactly once: nil when the write is durable and
    /// visible, else the error.
    ///
    /// A write that must wait for room (memtables waiting to flush) or a log in `periodic` mode
    /// (it writes through on the caller's thread) takes the async path in a task instead.
    public func write(
        _ mutation: Mutation,
        apply: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable ((any Error)?) -> Void
    ) {
        let payload: Encoded
        let pending: PendingWrite
        do {
            payload = try Self.validatedEncoding(mutation)
            let periodic: Bool
            if case .periodic = options.syncMode { periodic = true } else { periodic = false }
            let mustWait = try needsRoom()
            if periodic || mustWait {
                Task {
                    do {
                        try await self.write(mutation)
                        done(nil)
                    } catch {
                        done(error)
                    }
                }
                return
            }
            pending = try append([mutation], [payload])
        } catch {
            done(error)
            return
        }
        wal.whenDurable(pending.ticket) { error in
            if let error {
                pending.memtable.endWrite()
                done(error)
                return
            }
            apply {
                do {
                    try self.applyDurable(pending, [mutation], [payload])
                    done(nil)
                } catch {
                    done(error)
                }
            }
        }
    }

    typealias Encoded = (bytes: [UInt8], header: Range<Int>?, rows: [Range<Int>])

    static func validatedEncoding(_ m: Mutation) throws -> Encoded {
        guard !m.partitionKey.isEmpty, m.partitionKey.count <= Int(UInt16.max) else {
            throw StorageError(.invalidArgument, "partition key must be 1...65535 bytes (got \(m.partitionKey.count))")
        }
        for row in m.rows where row.clustering.isEmpty {
            throw StorageError(.invalidArgument, "a row needs a non-empty clustering key")
        }
        for rt in m.header.rangeTombstones {
            if let end = rt.end, compareBytes(rt.start, end) >= 0 {
                throw StorageError(.invalidArgument, "range tombstone start must be below its end")
            }
        }
        let encoded = m.encodedWithValueRanges()
        guard encoded.bytes.count <= maxMutationBytes else {
            throw StorageError(
                .tooLarge,
                "mutation of \(encoded.bytes.count) bytes exceeds the \(maxMutationBytes)-byte limit; split it")
        }
        return encoded
    }

    /// Writes appended to the WAL, not yet applied: they go into `memtable` (the one active when
    /// they were appended, so their WAL segment and their memtable match) once `ticket` is durable.
    struct PendingWrite: Sendable {
        var ticket: UInt64
        var memtable: Memtable
    }

    /// Appends the mutations to the WAL and registers them with the active memtable, which a
    /// flush will not read until they are applied or abandoned. Nothing is visible to readers yet:
    /// a read must never return a write that a crash could still lose (LevelDB and Cassandra's
    /// batch mode apply after the commit too).
    private func append(_ mutations: [Mutation], _ payloads: [Encoded]) throws -> PendingWrite {
        try writeLock.withLock {
            try checkOpen()
            let memtable = active
            var ticket: UInt64 = 0
            var lo = Int64.max
            for m in mutations { lo = min(lo, Memtable.minTimestamp(of: m)) }
            memtable.beginWrite(minTimestamp: lo)
            do {
                for p in payloads { ticket = try wal.append(p.bytes) }
            } catch {
                memtable.endWrite()
                throw error
            }
            // `counters` belongs to `state`, where `stats` reads it.
            let bytes = UInt64(payloads.reduce(0) { $0 + $1.bytes.count })
            state.withLock { counters.userBytesWritten &+= bytes }
            return PendingWrite(ticket: ticket, memtable: memtable)
        }
    }

    /// Makes durable writes visible: applied after the fdatasync that covers them (group commit
    /// keeps its batching: every writer of a group applies as soon as the group's sync returns).
    private func applyDurable(_ pending: PendingWrite, _ mutations: [Mutation], _ payloads: [Encoded]) throws {
        for (m, p) in zip(mutations, payloads) {
            pending.memtable.apply(m, payload: p.bytes, header: p.header, rows: p.rows)
        }
        pending.memtable.endWrite()
        metrics.writes.increment(by: mutations.count)
        metrics.writeBytes.increment(by: payloads.reduce(0) { $0 + $1.bytes.count })
        metrics.memtableBytes.record(pending.memtable.memoryBytes)
        // The memtable grows only here, so this is where it fills up; the writer that fills it
        // freezes it (rolling the WAL there), and without background work flushes it too.
        guard pending.memtable.memoryBytes >= options.memtableBytes else { return }
        let froze = try writeLock.withLock { () -> Bool in
            guard active === pending.memtable, !state.withLock({ closed }) else { return false }
            try freezeActiveLocked()
            return true
        }
        if froze && !options.backgroundWork {
            try flushFrozen()
        }
    }

    /// Called with `writeLock` held: freezes the active memtable and starts a new WAL segment.
    func freezeActiveLocked() throws {
        let nextSegment = try wal.rollSegment()
        state.withLock {
            frozen.append(FrozenMemtable(memtable: active, nextLogNumber: nextSegment))
            active = Memtable(id: nextMemtableID, capacityBytes: options.memtableBytes)
            nextMemtableID += 1
            wakeLocked()
        }
    }

    private func checkOpen() throws {
        let isClosed = state.withLock { closed }
        if isClosed { throw StorageError(.closed, "the storage engine is closed") }
    }

    private func needsRoom() throws -> Bool {
        try state.withLock {
            if closed { throw StorageError(.closed, "the storage engine is closed") }
            guard frozen.count >= options.maxFrozenMemtables, options.backgroundWork else { return false }
            if let e = backgroundError { throw e }
            return true
        }
    }

    /// Holds writers while too many memtables wait for flush, so memory stays bounded.
    private func waitForRoom() throws {
        guard options.backgroundWork else { return }
        state.lock()
        defer { state.unlock() }
        guard frozen.count >= options.maxFrozenMemtables else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        counters.writesStalled += 1
        metrics.stalls.increment()
        while frozen.count >= options.maxFrozenMemtables && !closed {
            if let e = backgroundError { throw e }
            stateChanged.wait()
        }
        let waited = DispatchTime.now().uptimeNanoseconds - start
        counters.stallMicros += waited / 1000
        metrics.stallTime.recordNanoseconds(Int64(waited))
        if closed { throw StorageError(.closed, "the storage engine is closed") }
    }

    // MARK: Lifecycle

    /// Stops background work, syncs the WAL and releases the directory. Memtables are not flushed:
    /// their data is in the WAL and is replayed on the next open.
    public func close() throws {
        let already = state.withLock { () -> Bool in
            let was = closed
            closed = true
            wakeLocked()
            return was
        }
        if already { return }
        defer { lockFile.release() }
        threadsDone.wait()
        writeLock.withLock {}
        try wal.close()
    }

    deinit {
        if !closed { try? close() }
    }

    public var stats: EngineStats {
        var s = state.withLock { () -> EngineStats in
            var s = counters
            s.sstableCount = tables.count
            s.memtableBytes = active.memoryBytes + frozen.reduce(0) { $0 + $1.memtable.memoryBytes }
            return s
        }
        s.walBytesWritten = wal.bytesWritten
        (s.writeGroups, s.groupedWriters) = writers.counts
        s.sstablesOpenedByReads = readTableOpens.load(ordering: .relaxed)
        var disk: UInt64 = 0
        if let names = try? fs.listDirectory(directory) {
            for n in names {
                if let size = try? fs.fileSize(joinPath(directory, n)) { disk += UInt64(size) }
            }
        }
        s.diskBytes = disk
        return s
    }

    /// Paths of the live SSTables, newest first (for tools and tests).
    package var sstablePaths: [String] { state.withLock { tables.map(\.path) } }

    static func sstableName(_ number: UInt64) -> String {
        "sst-" + String(number).leftPad(20) + ".db"
    }

    static func sstableNumber(_ name: String) -> UInt64? {
        guard name.hasPrefix("sst-"), name.hasSuffix(".db") else { return nil }
        return UInt64(name.dropFirst(4).dropLast(3))
    }
}

extension StorageEngine {
    /// Called with `state` held after a change writers or background threads may wait on: wakes
    /// the threads blocked on `state` and resumes the async writers waiting for room.
    func wakeLocked() {
        stateChanged.broadcast()
        let waiters = roomWaiters
        roomWaiters = []
        for w in waiters { w.resume() }
    }
}
