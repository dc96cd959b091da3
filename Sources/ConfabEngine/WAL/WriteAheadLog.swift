import Foundation
import Metrics

/// The write-ahead log: every mutation is framed (docs/wal_format.md) and appended here, and made
/// durable before it is applied to the memtable, so it can be replayed after a crash.
///
/// Guarantees:
/// - Records reach the files in ticket order, and a sync covers every record appended before it,
///   so whatever survives a crash is a prefix of the appended records (no holes), in every mode.
/// - `waitDurable(t)` returns without error in `batch` and `group` mode only after an fdatasync
///   that covers record `t` (and, for a new segment, an fsync of the directory) has succeeded.
///   In `periodic` mode it returns at once; a background thread fdatasyncs every period.
/// - After every fdatasync that covered new records, a sync marker naming the synced length is
///   appended (before the covered writers are woken), so recovery knows the synced prefix: damage
///   inside it is corruption, damage after it is an unsynced tail.
/// - Fail-stop: once a write or fdatasync fails, every waiter not yet covered gets that error and
///   the log refuses further appends, so nothing unsynced is ever acknowledged afterwards (the
///   page cache state after a failed fsync is unknown, as PostgreSQL learned).
///
/// Threads: appends copy the framed record into a pending buffer under a short lock. A dedicated
/// sync thread (Foundation `Thread`, not Swift concurrency) takes the whole buffer, writes it with
/// one call and fdatasyncs once for all writers waiting (group commit). In `batch` mode a blocked
/// writer does that itself. All file I/O is serialized by `io`, which is taken before `state`,
/// never while holding it.
final class WriteAheadLog: @unchecked Sendable {
    let directory: String
    let fileSystem: any FileSystem
    let syncMode: SyncMode
    let segmentBytes: Int

    /// Records queued for one segment; a batch with a new segment id makes the writer roll.
    private struct PendingBatch {
        var segmentID: UInt64
        var bytes: [UInt8]
        /// Ticket of the last record appended up to and including this batch.
        var lastTicket: UInt64
    }

    // Guarded by `state`.
    private let state = BlockingMutex()
    private let durableChanged: BlockingCondition
    private let workAvailable: BlockingCondition
    private var queue: [PendingBatch]
    private var queuedBytes = 0
    /// Records in `queue` (since the sync thread last took it).
    private var queuedRecords = 0
    /// The sync thread is gathering and wants a signal once `groupMaxRecords` are queued.
    private var gathering = false
    /// Bytes the active segment will hold: its header, the records queued for it, and room for a
    /// sync marker after each of them (and after the header), so a segment never outgrows
    /// `segmentBytes` whatever the syncs add.
    private var activeSegmentBytes: Int
    private var lastTicket: UInt64 = 0
    private var durableTicket: UInt64 = 0
    private var failure: StorageError?
    private var closing = false
    private var closed = false
    private var syncThreadIdle = false
    private var syncThreadExited = false
    /// Callers that do not block: called on the sync thread once their ticket is durable (nil) or
    /// never will be (the error).
    private var asyncWaiters: [(ticket: UInt64, done: DurableCallback)] = []
    private var spareBuffer: [UInt8] = []
    private var bytesWrittenTotal: UInt64 = 0
    private var syncCountTotal: UInt64 = 0
    /// Quiet intervals the group gathering waited (for tests).
    private var gatherWaitsTotal: UInt64 = 0
    /// Group gathering (`GroupCommitWindow`), in nanoseconds.
    private let groupQuietNanos: UInt64
    private let groupWindowNanos: UInt64
    private let groupMaxRecords: Int

    // Guarded by `io`.
    private let io = BlockingMutex()
    /// fdatasync latency of the log (`confab_engine_wal_sync_duration_seconds`): every
    /// acknowledged write waits for one, so it bounds write latency.
    private let syncLatency = Timer(label: "confab_engine_wal_sync_duration_seconds")
    private var file: (any WritableFile)?
    private var fileSegmentID: UInt64
    private var fileHasUnsyncedBytes = false
    /// A sync marker was appended after the last fdatasync and is not synced itself. It needs no
    /// sync of its own (the next group's covers it), except before the file is closed for good.
    private var fileHasUnsyncedMarker = false
    private var writtenTicket: UInt64 = 0

    /// In periodic mode the sync thread writes early once this much is pending, so the OS holds
    /// the records promptly and memory stays bounded.
    private static let periodicWriteThreshold = 1 << 20
    private static let maxSpareBufferBytes = 4 << 20
    private static let emptySegmentBytes = WALRecordFormat.segmentHeaderBytes + WALRecordFormat.syncMarkerBytes

    /// Starts a NEW segment file "wal-<id as 20-digit zero-padded decimal>.log" in `directory`
    /// (never appends to an old segment) and fsyncs the directory, so the segment exists durably
    /// before any record in it is acknowledged. Replay the old segments first: this does not.
    /// Starts the sync thread, which keeps the log alive until `close()`: always close it.
    init(
        directory: String, fileSystem: any FileSystem, syncMode: SyncMode, segmentBytes: Int, firstSegmentID: UInt64,
        groupCommit: GroupCommitWindow = GroupCommitWindow()
    ) throws {
        guard groupCommit.quietMicros >= 0, groupCommit.windowMicros >= groupCommit.quietMicros,
            groupCommit.maxWrites >= 0
        else {
            throw StorageError(
                .invalidArgument,
                "group commit window \(groupCommit.windowMicros) µs must be at least its quiet interval \(groupCommit.quietMicros) µs, and neither that nor its \(groupCommit.maxWrites) writes may be negative"
            )
        }
        groupQuietNanos = UInt64(groupCommit.quietMicros) * 1_000
        groupWindowNanos = UInt64(groupCommit.windowMicros) * 1_000
        groupMaxRecords = groupCommit.maxWrites
        guard segmentBytes > WALRecordFormat.segmentHeaderBytes else {
            throw StorageError(.invalidArgument, "WAL segment size \(segmentBytes) is too small")
        }
        if case .periodic(let ms) = syncMode, ms <= 0 {
            throw StorageError(.invalidArgument, "periodic WAL sync needs a period above 0 ms, got \(ms)")
        }
        self.directory = directory
        self.fileSystem = fileSystem
        self.syncMode = syncMode
        self.segmentBytes = segmentBytes
        self.durableChanged = BlockingCondition(state)
        self.workAvailable = BlockingCondition(state)
        self.queue = [PendingBatch(segmentID: firstSegmentID, bytes: [], lastTicket: 0)]
        self.activeSegmentBytes = Self.emptySegmentBytes
        self.fileSegmentID = firstSegmentID

        try fileSystem.createDirectoryDurably(directory)
        let path = Self.segmentPath(directory: directory, id: firstSegmentID)
        let f = try fileSystem.createFile(path, truncate: false)
        do {
            try f.append(WALRecordFormat.segmentHeader(id: firstSegmentID))
            _ = f.preallocate(segmentBytes)
            try f.sync()
            try fileSystem.syncDirectory(directory)
        } catch {
            try? f.close()
            throw error
        }
        file = f
        bytesWrittenTotal = UInt64(WALRecordFormat.segmentHeaderBytes)
        syncCountTotal = 1

        let thread = Thread { [self] in runSyncThread() }
        thread.name = "confab-wal-sync"
        thread.start()
    }

    // MARK: - Appending

    /// Thread-safe. Frames `payload` (at most 64 MiB) and queues it after every record appended
    /// before; returns its ticket (1, 2, 3, ... in append order). Not durable yet: pass the ticket
    /// to `waitDurable`. Rolls to a new segment first when this record would push the current one
    /// past `segmentBytes` (a segment holds at least one record whatever its size).
    func append(_ payload: [UInt8]) throws -> UInt64 {
        guard payload.count <= WALRecordFormat.maxPayloadBytes else {
            throw StorageError(
                .tooLarge,
                "WAL record of \(payload.count) bytes exceeds the limit of \(WALRecordFormat.maxPayloadBytes) bytes")
        }
        // Checksums outside the lock: the critical section is a copy.
        let (headerCRC, length, dataCRC) = payload.withUnsafeBytes { WALRecordFormat.recordHeader(for: $0) }
        let framed = WALRecordFormat.recordHeaderBytes + payload.count

        state.lock()
        defer { state.unlock() }
        if let failure { throw stoppedError(failure) }
        if closing { throw StorageError(.closed, "the write-ahead log is closed", path: directory) }
        let reserved = framed + WALRecordFormat.syncMarkerBytes
        if activeSegmentBytes > Self.emptySegmentBytes && activeSegmentBytes + reserved > segmentBytes {
            startSegmentLocked()
        }
        let last = queue.count - 1
        payload.withUnsafeBytes {
            WALRecordFormat.appendRecord(
                $0, headerCRC: headerCRC, length: length, dataCRC: dataCRC, to: &queue[last].bytes)
        }
        lastTicket += 1
        queue[last].lastTicket = lastTicket
        queuedBytes += framed
        queuedRecords += 1
        activeSegmentBytes += reserved
        switch syncMode {
        case .group:
            if syncThreadIdle || (gathering && queuedRecords == groupMaxRecords) { workAvailable.signal() }
        case .periodic:
            if syncThreadIdle && queuedBytes >= Self.periodicWriteThreshold { workAvailable.signal() }
        case .batch:
            break
        }
        return lastTicket
    }

    /// Queues a roll: records appended from now on go to segment id + 1.
    private func startSegmentLocked() {
        let next = queue[queue.count - 1].segmentID + 1
        queue.append(PendingBatch(segmentID: next, bytes: takeSpareBufferLocked(), lastTicket: lastTicket))
        activeSegmentBytes = Self.emptySegmentBytes
    }

    private func takeSpareBufferLocked() -> [UInt8] {
        var b: [UInt8] = []
        swap(&b, &spareBuffer)
        return b
    }

    // MARK: - Durability

    /// Blocks until record `ticket` is durable. `batch`: the caller writes and fdatasyncs right
    /// away itself (a sync by another writer that already covers the ticket is reused). `group`:
    /// the sync thread merges everything pending into one write and one fdatasync and wakes every
    /// writer it covers. `periodic`: returns at once. Throws the error of the write or sync that
    /// should have covered the ticket (e.g. `.diskFull`); the log is stopped after that.
    func waitDurable(_ ticket: UInt64) throws {
        switch syncMode {
        case .periodic:
            try writeThrough(ticket)
        case .batch:
            if try state.withLock({ try isDurableLocked(ticket) }) { return }
            io.lock()
            defer { io.unlock() }
            if try state.withLock({ try isDurableLocked(ticket) }) { return }
            flushIOLocked(sync: true)
            if try state.withLock({ try isDurableLocked(ticket) }) { return }
            throw StorageError(.io, "WAL sync did not cover ticket \(ticket)", path: directory)
        case .group:
            state.lock()
            defer { state.unlock() }
            while try !isDurableLocked(ticket) {
                if syncThreadIdle { workAvailable.signal() }
                durableChanged.wait()
            }
        }
    }

    /// Periodic mode: hands the record to the OS (write, no fdatasync) before acknowledging, so a
    /// process crash loses nothing acknowledged; only a power loss can drop the last period.
    /// Concurrent writers share one write call.
    private func writeThrough(_ ticket: UInt64) throws {
        try state.withLock { try checkTicketLocked(ticket) }
        io.lock()
        if writtenTicket < ticket { flushIOLocked(sync: false) }
        io.unlock()
        try state.withLock { try checkTicketLocked(ticket) }
    }

    /// `waitDurable` for Swift concurrency: the task suspends and the sync thread resumes it, so no
    /// cooperative thread blocks on an fdatasync.
    func waitDurable(_ ticket: UInt64) async throws {
        if case .periodic = syncMode {
            try writeThrough(ticket)
            return
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            whenDurable(ticket) { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
    }

    typealias DurableCallback = @Sendable ((any Error)?) -> Void

    /// `waitDurable` for callers that block nothing, neither a thread nor a task (an event loop):
    /// `done` runs once on the sync thread when `ticket` is durable (nil) or never will be (the
    /// error), or at once on this thread when that is already known. `group` and `batch` mode
    /// only: `periodic` writes through on the caller's thread, which must be allowed to block.
    func whenDurable(_ ticket: UInt64, _ done: @escaping DurableCallback) {
        if case .periodic = syncMode { preconditionFailure("whenDurable in periodic mode; use waitDurable") }
        state.lock()
        do {
            if try isDurableLocked(ticket) {
                state.unlock()
                done(nil)
                return
            }
        } catch {
            state.unlock()
            done(error)
            return
        }
        asyncWaiters.append((ticket, done))
        if syncThreadIdle { workAvailable.signal() }
        state.unlock()
    }

    /// True when `ticket` is covered by a successful sync; throws when it never will be.
    private func isDurableLocked(_ ticket: UInt64) throws -> Bool {
        try checkTicketLocked(ticket)
        if ticket <= durableTicket { return true }
        if closed {
            throw StorageError(
                .closed, "the write-ahead log was closed before ticket \(ticket) was synced", path: directory)
        }
        return false
    }

    private func checkTicketLocked(_ ticket: UInt64) throws {
        if ticket > lastTicket {
            throw StorageError(.invalidArgument, "WAL ticket \(ticket) was never issued (last is \(lastTicket))")
        }
        if let failure, ticket > durableTicket { throw failure }
    }

    /// Writes and fdatasyncs everything appended so far; returns when it is durable.
    func sync() throws {
        io.lock()
        defer { io.unlock() }
        flushIOLocked(sync: true)
        try state.withLock {
            if let failure { throw failure }
        }
    }

    /// Finishes the current segment (written and fdatasynced) and starts a new one, created and
    /// made durable (with its directory entry) before this returns. Records appended after the
    /// call starts go to the new segment, so every segment below the returned id holds only
    /// records appended before it.
    func rollSegment() throws -> UInt64 {
        let id: UInt64 = try state.withLock {
            if let failure { throw stoppedError(failure) }
            if closing { throw StorageError(.closed, "the write-ahead log is closed", path: directory) }
            startSegmentLocked()
            return queue[queue.count - 1].segmentID
        }
        try sync()
        return id
    }

    /// Id of the segment new appends go to.
    var currentSegmentID: UInt64 { state.withLock { queue[queue.count - 1].segmentID } }

    /// Framed bytes (segment headers included) written to files: the WAL's share of write
    /// amplification.
    var bytesWritten: UInt64 { state.withLock { bytesWrittenTotal } }

    /// fdatasyncs issued; records / syncCount is the mean group-commit batch size.
    var syncCount: UInt64 { state.withLock { syncCountTotal } }

    /// Quiet intervals the sync thread waited while gathering a group.
    var gatherWaits: UInt64 { state.withLock { gatherWaitsTotal } }

    /// Syncs everything appended, stops the sync thread and closes the segment. Appends after this
    /// throw `.closed`. Throws the log's failure if it had stopped on an I/O error.
    func close() throws {
        state.lock()
        if closing {
            state.unlock()
            return
        }
        closing = true
        workAvailable.signal()
        while !syncThreadExited { durableChanged.wait() }
        state.unlock()

        io.lock()
        flushIOLocked(sync: true)
        var closeError: (any Error)?
        if state.withLock({ failure == nil }), let f = file {
            do { try f.trimToSize() } catch { closeError = error }
            if fileHasUnsyncedMarker {
                // A clean close leaves nothing unsynced, the last marker included.
                do { try f.sync() } catch { closeError = error }
                fileHasUnsyncedMarker = false
            }
        }
        do { try file?.close() } catch { closeError = closeError ?? error }
        file = nil
        io.unlock()

        let leftovers: [(ticket: UInt64, done: DurableCallback)] = state.withLock {
            closed = true
            durableChanged.broadcast()
            let w = asyncWaiters
            asyncWaiters = []
            return w
        }
        let stopped = state.withLock { failure }
        for w in leftovers {
            w.done(stopped ?? StorageError(.closed, "the write-ahead log was closed", path: directory))
        }
        if let stopped { throw stopped }
        if let closeError { throw closeError }
    }

    private func stoppedError(_ f: StorageError) -> StorageError {
        StorageError(
            f.code,
            "the write-ahead log stopped accepting writes after a failed write or fdatasync (\(f.message)); nothing after the last successful sync was acknowledged; restart to recover from the log",
            path: f.path, errno: f.errno)
    }

    // MARK: - Writing to the files

    /// Takes everything queued, writes it to the segment files in order (rolling segments as the
    /// queue says), and fdatasyncs when `sync`. Caller holds `io`. On an error the log stops.
    private func flushIOLocked(sync: Bool) {
        state.lock()
        if failure != nil || file == nil {
            state.unlock()
            return
        }
        var batches = queue
        let activeID = queue[queue.count - 1].segmentID
        queue = [PendingBatch(segmentID: activeID, bytes: takeSpareBufferLocked(), lastTicket: lastTicket)]
        queuedBytes = 0
        queuedRecords = 0
        state.unlock()

        var written: UInt64 = 0
        var syncs: UInt64 = 0
        var error: StorageError?
        do {
            for batch in batches {
                if batch.segmentID != fileSegmentID {
                    try rollFileIOLocked(to: batch.segmentID, written: &written, syncs: &syncs)
                }
                if !batch.bytes.isEmpty {
                    try file!.append(batch.bytes)
                    written += UInt64(batch.bytes.count)
                    fileHasUnsyncedBytes = true
                }
                writtenTicket = max(writtenTicket, batch.lastTicket)
            }
            if sync && fileHasUnsyncedBytes {
                let syncedLength = file!.size
                let syncStart = ContinuousClock.now
                try file!.sync()
                syncLatency.record(duration: ContinuousClock.now - syncStart)
                syncs += 1
                fileHasUnsyncedBytes = false
                // Recorded before anyone is acknowledged: a process crash then always leaves the
                // marker, and recovery can tell a damaged acknowledged record from a torn tail.
                try file!.append(WALRecordFormat.syncMarker(syncedLength: UInt64(syncedLength)))
                written += UInt64(WALRecordFormat.syncMarkerBytes)
                fileHasUnsyncedMarker = true
            }
        } catch let e as StorageError {
            error = e
        } catch let e {
            error = StorageError(.io, "WAL write failed: \(e)", path: directory)
        }

        var buffer = batches.removeLast().bytes
        batches = []
        buffer.removeAll(keepingCapacity: true)

        var ready: [DurableCallback] = []
        var failed: [DurableCallback] = []
        state.lock()
        bytesWrittenTotal += written
        syncCountTotal += syncs
        if buffer.capacity <= Self.maxSpareBufferBytes && spareBuffer.capacity < buffer.capacity {
            spareBuffer = buffer
        }
        if let error {
            failure = error
            failed = asyncWaiters.map(\.done)
            asyncWaiters = []
        } else if sync {
            durableTicket = max(durableTicket, writtenTicket)
            if !asyncWaiters.isEmpty {
                var remaining: [(ticket: UInt64, done: DurableCallback)] = []
                for w in asyncWaiters {
                    if w.ticket <= durableTicket { ready.append(w.done) } else { remaining.append(w) }
                }
                asyncWaiters = remaining
            }
        }
        durableChanged.broadcast()
        state.unlock()

        for done in ready { done(nil) }
        if let error { for done in failed { done(error) } }
    }

    /// Finishes the open segment (fdatasync, so an older segment never has a hole that a newer one
    /// does not) and creates the next, with its header, then fsyncs the directory.
    private func rollFileIOLocked(to id: UInt64, written: inout UInt64, syncs: inout UInt64) throws {
        if let old = file {
            // Cut to what was written: a finished segment holds no preallocated space (a crash
            // before this leaves zeros, which replay reads as the segment's end).
            try old.trimToSize()
            // Synced in full, marker included: only the newest segment may end in a torn tail.
            if fileHasUnsyncedBytes || fileHasUnsyncedMarker {
                try old.sync()
                syncs += 1
                fileHasUnsyncedBytes = false
                fileHasUnsyncedMarker = false
            }
            file = nil
            try old.close()
        }
        let f = try fileSystem.createFile(Self.segmentPath(directory: directory, id: id), truncate: false)
        file = f
        fileSegmentID = id
        try f.append(WALRecordFormat.segmentHeader(id: id))
        _ = f.preallocate(segmentBytes)
        written += UInt64(WALRecordFormat.segmentHeaderBytes)
        fileHasUnsyncedBytes = true
        try fileSystem.syncDirectory(directory)
    }

    /// Group commit gathering: while records keep arriving (another one within `groupQuietNanos`),
    /// wait up to `groupWindowNanos` before syncing, so one fdatasync covers the writers that were
    /// just woken by the previous one instead of alternating small and large batches, and a busy
    /// node makes fewer, larger syncs (`GroupCommitWindow` has the measurements). A lone writer
    /// pays one quiet interval. Gathering ends early once `groupMaxRecords` records are queued:
    /// one fdatasync already covers enough writes, and closed-loop writers (all of them waiting
    /// for this sync) would otherwise wait out the window.
    private func gatherGroupLocked() {
        let start = BlockingCondition.nowNanos()
        var seen = queuedBytes
        gathering = true
        defer { gathering = false }
        while !closing {
            if groupMaxRecords > 0 && queuedRecords >= groupMaxRecords { return }
            let now = BlockingCondition.nowNanos()
            if now - start >= groupWindowNanos { return }
            gatherWaitsTotal += 1
            workAvailable.wait(untilNanos: min(now + groupQuietNanos, start + groupWindowNanos))
            if queuedBytes == seen { return }
            seen = queuedBytes
        }
    }

    // MARK: - The sync thread

    private enum SyncThreadWork { case writeAndSync, writeOnly }

    /// Group: flush whenever something is queued (while it syncs, the next batch accumulates).
    /// Batch: flush only for async waiters (blocking waiters flush themselves).
    /// Periodic: write + fdatasync at every period; write early when 1 MiB is pending.
    private func runSyncThread() {
        var deadline: UInt64 = 0
        var periodNanos: UInt64 = 0
        if case .periodic(let ms) = syncMode {
            periodNanos = UInt64(ms) * 1_000_000
            deadline = BlockingCondition.nowNanos() + periodNanos
        }
        state.lock()
        while !closing {
            var work: SyncThreadWork?
            if failure == nil {
                switch syncMode {
                case .group:
                    if queuedBytes > 0 || queue.count > 1 || !asyncWaiters.isEmpty {
                        work = .writeAndSync
                        gatherGroupLocked()
                    }
                case .batch:
                    if !asyncWaiters.isEmpty { work = .writeAndSync }
                case .periodic:
                    let now = BlockingCondition.nowNanos()
                    if now >= deadline {
                        deadline = now + periodNanos
                        work = .writeAndSync
                    } else if queuedBytes >= Self.periodicWriteThreshold {
                        work = .writeOnly
                    }
                }
            }
            guard let work else {
                syncThreadIdle = true
                if periodNanos > 0 { workAvailable.wait(untilNanos: deadline) } else { workAvailable.wait() }
                syncThreadIdle = false
                continue
            }
            state.unlock()
            io.lock()
            flushIOLocked(sync: work == .writeAndSync)
            io.unlock()
            state.lock()
        }
        syncThreadExited = true
        durableChanged.broadcast()
        state.unlock()
    }
}
