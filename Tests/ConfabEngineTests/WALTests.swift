import Foundation
import Testing

@testable import ConfabEngine

/// Write-ahead log: framing, segments, replay, torn tails vs corruption, sync modes, fail-stop.
@Suite struct WALTests {
    // MARK: - Helpers

    /// A fresh directory per test (tests run in parallel in one process).
    static func tempDirectory() -> String {
        let dir = NSTemporaryDirectory() + "confab-wal-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func removeDirectory(_ dir: String) {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Deterministic payload bytes: `tag` identifies the record, `size` its length.
    static func payload(_ tag: Int, size: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out.appendLE64(UInt64(tag))
        var x = UInt64(tag) &* 0x9E37_79B9_7F4A_7C15 | 1
        while out.count < size {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            out.append(UInt8(truncatingIfNeeded: x))
        }
        return Array(out.prefix(size))
    }

    static func replayAll(_ dir: String, fs: any FileSystem = PosixFileSystem(), from: UInt64 = 0) throws -> (
        [[UInt8]], [(UInt64, Int)], WALReplayReport
    ) {
        var payloads: [[UInt8]] = []
        var positions: [(UInt64, Int)] = []
        let report = try WriteAheadLog.replay(directory: dir, fileSystem: fs, fromSegment: from) { p, seg, off in
            payloads.append(p)
            positions.append((seg, off))
        }
        return (payloads, positions, report)
    }

    static func appendRaw(_ path: String, _ bytes: [UInt8]) throws {
        let f = try PosixFileSystem().openForAppend(path)
        try f.append(bytes)
        try f.close()
    }

    static func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
        let h = try #require(FileHandle(forUpdatingAtPath: path))
        try h.seek(toOffset: UInt64(offset))
        try h.write(contentsOf: Data(bytes))
        try h.close()
    }

    static func fileBytes(_ path: String) throws -> [UInt8] {
        try PosixFileSystem().openForReading(path).readAll()
    }

    // MARK: - Format

    @Test func segmentNamesSortByID() {
        #expect(WALRecordFormat.segmentFileName(42) == "wal-00000000000000000042.log")
        #expect(WALRecordFormat.segmentID(fromFileName: "wal-00000000000000000042.log") == 42)
        #expect(WALRecordFormat.segmentID(fromFileName: "wal-42.log") == nil)
        #expect(WALRecordFormat.segmentID(fromFileName: "wal-0000000000000000004x.log") == nil)
        #expect(WALRecordFormat.segmentFileName(UInt64.max) == "wal-18446744073709551615.log")
    }

    @Test func zeroFilledRecordHeaderNeverChecksOut() {
        // A zero-filled tail must not parse as a valid (empty) record.
        #expect(WALRecordFormat.headerCRC(length: 0, dataCRC: 0) != 0)
        let empty = WALRecordFormat.framedRecord([])
        #expect(empty.count == WALRecordFormat.recordHeaderBytes)
        #expect(empty != [UInt8](repeating: 0, count: 12))
    }

    // MARK: - Round trips and segments

    @Test func roundTripManyRecordsIncludingLargePayloads() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 64 << 20, firstSegmentID: 1)
        var expected: [[UInt8]] = []
        for i in 0..<600 {
            let size = i % 100 == 7 ? 400_000 : (i * 37) % 300
            expected.append(Self.payload(i, size: size))
        }
        expected.append([])  // an empty payload is a valid record
        var last: UInt64 = 0
        for p in expected {
            let t = try wal.append(p)
            #expect(t == last + 1)
            last = t
        }
        try wal.waitDurable(last)
        let written = wal.bytesWritten
        try wal.close()

        let (payloads, positions, report) = try Self.replayAll(dir)
        #expect(payloads == expected)
        #expect(report.records == expected.count)
        #expect(report.segments == 1)
        #expect(report.truncatedTail == nil)
        #expect(UInt64(report.bytes) == written)
        #expect(positions.first?.1 == WALRecordFormat.segmentHeaderBytes)
        #expect(positions.allSatisfy { $0.0 == 1 })
    }

    @Test func segmentsRollBySizeAndReplayInOrder() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 4096, firstSegmentID: 7)
        var expected: [[UInt8]] = []
        for i in 0..<300 {
            let p = Self.payload(i, size: 50 + i % 200)
            expected.append(p)
            _ = try wal.append(p)
        }
        // A record larger than a whole segment still gets written, alone in its segment.
        let big = Self.payload(999, size: 10_000)
        expected.append(big)
        let t = try wal.append(big)
        try wal.waitDurable(t)
        try wal.close()

        let ids = try WriteAheadLog.segmentIDs(directory: dir, fileSystem: fs)
        #expect(ids.count > 10)
        #expect(ids.first == 7)
        #expect(ids == Array(ids.first!...ids.last!))
        for id in ids.dropLast() {
            #expect(try fs.fileSize(WriteAheadLog.segmentPath(directory: dir, id: id)) <= 4096)
        }
        let (payloads, positions, report) = try Self.replayAll(dir)
        #expect(payloads == expected)
        #expect(report.segments == ids.count)
        // Positions ascend: by segment, then by offset.
        for (a, b) in zip(positions, positions.dropFirst()) {
            #expect(a.0 < b.0 || (a.0 == b.0 && a.1 < b.1))
        }

        // Replaying from a later segment skips the earlier ones.
        let from = ids[ids.count / 2]
        let (tail, tailPositions, _) = try Self.replayAll(dir, from: from)
        #expect(tailPositions.allSatisfy { $0.0 >= from })
        #expect(tail == Array(expected.suffix(tail.count)))
        #expect(tail.count < expected.count)
    }

    @Test func rollSegmentStartsNewSegmentAndRemoveDeletesOldOnes() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .batch, segmentBytes: 1 << 20, firstSegmentID: 1)
        _ = try wal.append([1])
        let two = try wal.rollSegment()
        #expect(two == 2)
        #expect(wal.currentSegmentID == 2)
        // The new segment exists durably before any record is appended to it.
        #expect(fs.fileExists(WriteAheadLog.segmentPath(directory: dir, id: 2)))
        _ = try wal.append([2])
        let three = try wal.rollSegment()
        #expect(three == 3)
        let t = try wal.append([3])
        try wal.waitDurable(t)
        try wal.close()

        let (payloads, positions, _) = try Self.replayAll(dir)
        #expect(payloads == [[1], [2], [3]])
        #expect(positions.map(\.0) == [1, 2, 3])

        try WriteAheadLog.removeSegments(directory: dir, fileSystem: fs, below: 3)
        #expect(try WriteAheadLog.segmentIDs(directory: dir, fileSystem: fs) == [3])
        #expect(try Self.replayAll(dir).0 == [[3]])
    }

    @Test func newLogNeverAppendsToAnExistingSegment() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 5)
        try wal.close()
        #expect(throws: StorageError.self) {
            _ = try WriteAheadLog(
                directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20,
                firstSegmentID: 5)
        }
    }

    // MARK: - Torn tails and corruption

    enum TornShape: String, CaseIterable, CustomStringConvertible {
        case partialHeader, partialPayload, zeroFilled, garbage, partialHeaderPlusZeros, tornSegmentHeader,
            zeroSegmentHeader, emptyNewSegment
        var description: String { rawValue }
    }

    @Test(arguments: TornShape.allCases)
    func tornTailIsTruncatedAndLogContinues(_ shape: TornShape) throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        var expected: [[UInt8]] = []
        for i in 0..<40 {
            let p = Self.payload(i, size: 100 + i)
            expected.append(p)
            _ = try wal.append(p)
        }
        try wal.sync()
        try wal.close()
        var path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        let goodSize = try fs.fileSize(path)
        var cutAt = goodSize

        let next = WALRecordFormat.framedRecord(Self.payload(1000, size: 500))
        switch shape {
        case .partialHeader:
            try Self.appendRaw(path, Array(next.prefix(7)))
        case .partialPayload:
            try Self.appendRaw(path, Array(next.prefix(12 + 200)))
        case .zeroFilled:
            try Self.appendRaw(path, [UInt8](repeating: 0, count: 8192))
        case .garbage:
            var rng = SystemRandomNumberGenerator()
            try Self.appendRaw(path, (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case .partialHeaderPlusZeros:
            try Self.appendRaw(path, Array(next.prefix(12 + 100)) + [UInt8](repeating: 0, count: 4096 - 112))
        case .tornSegmentHeader, .zeroSegmentHeader, .emptyNewSegment:
            // A crash while segment 2 was being created.
            path = WriteAheadLog.segmentPath(directory: dir, id: 2)
            let header = WALRecordFormat.segmentHeader(id: 2)
            let bytes: [UInt8] =
                switch shape {
                case .tornSegmentHeader: Array(header.prefix(10))
                case .zeroSegmentHeader: [UInt8](repeating: 0, count: 300)
                default: []
                }
            let f = try fs.createFile(path, truncate: false)
            try f.append(bytes)
            try f.close()
            cutAt = 0
        }

        let (payloads, _, report) = try Self.replayAll(dir)
        #expect(payloads == expected)
        if shape == .emptyNewSegment || shape == .zeroFilled {
            // Zeros to the end past everything synced: a preallocated segment's unused space,
            // cut without a report (nothing was written there).
            #expect(report.truncatedTail == nil)
        } else {
            let tail = try #require(report.truncatedTail)
            #expect(tail.path == path)
            #expect(tail.offset == cutAt)
            #expect(tail.bytesDropped > 0)
        }
        #expect(try fs.fileSize(path) == cutAt)

        // Replay is idempotent, and a new log after the torn one works and replays with it.
        #expect(try Self.replayAll(dir).2.truncatedTail == nil)
        let nextID = try #require(try WriteAheadLog.segmentIDs(directory: dir, fileSystem: fs).last) + 1
        let wal2 = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: nextID)
        let t = try wal2.append([42, 42])
        try wal2.waitDurable(t)
        try wal2.close()
        let (again, _, report2) = try Self.replayAll(dir)
        #expect(again == expected + [[42, 42]])
        #expect(report2.truncatedTail == nil)
    }

    /// Writes 50 records to segment 1 and returns their offsets.
    static func writeFifty(_ dir: String) throws -> [Int] {
        // Batch mode: nothing is written before close, so the records are back to back and one
        // sync marker follows the last one.
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .batch, segmentBytes: 1 << 20, firstSegmentID: 1)
        for i in 0..<50 { _ = try wal.append(payload(i, size: 64)) }
        try wal.close()
        var offsets: [Int] = []
        _ = try WriteAheadLog.replay(directory: dir, fileSystem: PosixFileSystem(), fromSegment: 0) { _, _, off in
            offsets.append(off)
        }
        return offsets
    }

    @Test(arguments: [0, 4, 8, 12, 40])
    func flippedByteMidLogIsCorruptionWithPathAndOffset(_ byteInRecord: Int) throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let offsets = try Self.writeFifty(dir)
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        let bytes = try Self.fileBytes(path)
        let at = offsets[10] + byteInRecord
        try Self.overwrite(path, at: at, with: [bytes[at] ^ 0x20])
        let sizeBefore = try PosixFileSystem().fileSize(path)

        var seen = 0
        let error = try #require(throws: StorageError.self) {
            _ = try WriteAheadLog.replay(directory: dir, fileSystem: PosixFileSystem(), fromSegment: 0) { _, _, _ in
                seen += 1
            }
        }
        #expect(error.code == .corruption)
        #expect(error.path == path)
        #expect(error.offset == offsets[10])
        #expect(seen == 10)
        // Corruption is never "repaired" by truncation.
        #expect(try PosixFileSystem().fileSize(path) == sizeBefore)
    }

    /// An acknowledged record damaged on disk is corruption even when it is the last one: the sync
    /// marker written after its fdatasync proves it was synced. (Without markers it was cut off as
    /// a torn tail, silently losing an acknowledged write.)
    @Test(arguments: ["clean close", "process crash"])
    func flippedByteInTheLastSyncedRecordIsCorruption(_ ending: String) throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = try FaultInjectingFileSystem(root: dir)
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        var last: UInt64 = 0
        for i in 0..<20 {
            last = try wal.append(Self.payload(i, size: 80))
            try wal.waitDurable(last)
        }
        if ending == "clean close" {
            try wal.close()
        } else {
            fs.crash()  // the process dies with the bytes it wrote in the page cache
            try? wal.close()
        }
        var offsets: [Int] = []
        _ = try WriteAheadLog.replay(directory: dir, fileSystem: PosixFileSystem(), fromSegment: 0) { _, _, off in
            offsets.append(off)
        }
        #expect(offsets.count == 20)
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        let bytes = try Self.fileBytes(path)
        let at = offsets[19] + 12 + 40
        try Self.overwrite(path, at: at, with: [bytes[at] ^ 0x01])
        let sizeBefore = bytes.count

        var seen = 0
        let error = try #require(throws: StorageError.self) {
            _ = try WriteAheadLog.replay(directory: dir, fileSystem: PosixFileSystem(), fromSegment: 0) { _, _, _ in
                seen += 1
            }
        }
        #expect(error.code == .corruption)
        #expect(error.offset == offsets[19])
        #expect(error.message.contains("synced prefix"))
        #expect(seen == 19)
        #expect(try PosixFileSystem().fileSize(path) == sizeBefore)
    }

    /// A power loss while a never-acknowledged group was being written back: later pages of it may
    /// reach the disk and earlier ones not, so a bad record can be followed by intact ones. That
    /// is an unsynced tail, not corruption: recovery cuts it (reporting it) and keeps every
    /// synced record. Seeds are printed; each round uses its own directory.
    @Test func unsyncedPagesPersistedOutOfOrderAreCutAsATornTail() throws {
        let base = testSeed()
        print("WALTests.unsyncedPagesPersistedOutOfOrderAreCutAsATornTail: seed \(base) (CONFAB_SEED=\(base))")
        var outOfOrder = 0
        for round in 0..<24 {
            let seed = base &+ UInt64(round)
            let dir = Self.tempDirectory()
            defer { Self.removeDirectory(dir) }
            let fs = try FaultInjectingFileSystem(root: dir)
            // Periodic mode with a period that never comes: acknowledged writes reach the file
            // without an fdatasync, so the test decides exactly what is synced.
            let wal = try WriteAheadLog(
                directory: dir, fileSystem: fs, syncMode: .periodic(milliseconds: 3_600_000), segmentBytes: 1 << 20,
                firstSegmentID: 1)
            var synced: [[UInt8]] = []
            for i in 0..<20 {
                let p = Self.payload(i, size: 300)
                synced.append(p)
                _ = try wal.append(p)
            }
            try wal.sync()
            var unsynced: [[UInt8]] = []
            for i in 20..<80 {
                let p = Self.payload(i, size: 300)
                unsynced.append(p)
                try wal.waitDurable(try wal.append(p))  // written to the file, not synced
            }
            try fs.simulatePowerLoss(unsynced: .randomPages(seed: seed))
            try? wal.close()

            let result: ([[UInt8]], [(UInt64, Int)], WALReplayReport)
            do {
                result = try Self.replayAll(dir)
            } catch {
                Issue.record("seed \(seed): recovery refused an unsynced tail: \(error)")
                continue
            }
            let (payloads, _, report) = result
            // Every synced record, then a prefix of the unsynced ones: never a hole.
            #expect(payloads.count >= synced.count, "seed \(seed)")
            #expect(payloads == synced + Array(unsynced.prefix(payloads.count - synced.count)), "seed \(seed)")
            if let tail = report.truncatedTail {
                #expect(tail.offset >= tail.syncedThrough ?? 0, "seed \(seed)")
                if tail.intactRecordAfter != nil { outOfOrder += 1 }
            }
            // The cut is durable and replay is idempotent.
            #expect(try Self.replayAll(dir).0 == payloads, "seed \(seed)")
        }
        // The rounds did exercise "a bad record followed by an intact one".
        #expect(outOfOrder > 0, "no round persisted an unsynced page after a lost one (seed \(base))")
    }

    @Test func damageAtTheEndOfAnOlderSegmentIsCorruption() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        _ = try wal.append(Self.payload(1, size: 100))
        _ = try wal.rollSegment()
        _ = try wal.append(Self.payload(2, size: 100))
        try wal.close()
        let old = WriteAheadLog.segmentPath(directory: dir, id: 1)
        let size = try fs.fileSize(old)
        try fs.truncate(old, to: size - 30)  // shaped like a torn tail, but not in the newest segment
        let error = try #require(throws: StorageError.self) { _ = try Self.replayAll(dir) }
        #expect(error.code == .corruption)
        #expect(error.path == old)
        #expect(error.offset == WALRecordFormat.segmentHeaderBytes)
    }

    @Test func renamedSegmentIsDetected() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 3)
        _ = try wal.append([1, 2, 3])
        try wal.close()
        let renamed = WriteAheadLog.segmentPath(directory: dir, id: 9)
        try PosixFileSystem().rename(WriteAheadLog.segmentPath(directory: dir, id: 3), to: renamed)
        let error = try #require(throws: StorageError.self) { _ = try Self.replayAll(dir) }
        #expect(error.code == .corruption)
        #expect(error.path == renamed)
        #expect(error.offset == 0)
    }

    @Test func segmentReaderReportsFirstBadRecordAndWhatFollows() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let offsets = try Self.writeFifty(dir)
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        try Self.overwrite(path, at: offsets[20] + 30, with: [0xFF, 0xFF])
        let reader = try WALSegmentReader(path: path, fileSystem: PosixFileSystem(), expectedSegmentID: 1)
        var count = 0
        while let r = try reader.next() {
            #expect(r.offset == offsets[count])
            count += 1
        }
        #expect(count == 20)
        let bad = try #require(reader.badRecord)
        #expect(bad.offset == offsets[20])
        #expect(bad.reason.contains("payload checksum"))
        #expect(bad.validRecordFollowsAt == offsets[21])
        #expect(!bad.looksLikeTornTail)
    }

    // MARK: - Sync modes

    @Test func concurrentWritersShareSyncsInGroupMode() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 256 << 10, firstSegmentID: 1)
        let threads = 32
        let perThread = 200
        let errors = WALTestLockedBox<[String]>([])
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    for i in 0..<perThread {
                        var p: [UInt8] = []
                        p.appendLE32(UInt32(t))
                        p.appendLE32(UInt32(i))
                        p += Self.payload(t * 10_000 + i, size: 40)
                        let ticket = try wal.append(p)
                        try wal.waitDurable(ticket)
                    }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
            thread.start()
        }
        group.wait()
        let syncs = wal.syncCount
        try wal.close()
        #expect(errors.withLock { $0 }.isEmpty)

        let (payloads, _, report) = try Self.replayAll(dir)
        #expect(report.records == threads * perThread)
        var nextIndex = [Int](repeating: 0, count: threads)
        for p in payloads {
            let t = Int(p.withUnsafeBytes { UInt32.loadLE($0, at: 0) })
            let i = Int(p.withUnsafeBytes { UInt32.loadLE($0, at: 4) })
            // Each writer's records appear once each, in its order.
            #expect(i == nextIndex[t])
            nextIndex[t] = i + 1
        }
        #expect(nextIndex == [Int](repeating: perThread, count: threads))
        let ratio = Double(threads * perThread) / Double(syncs)
        print(
            "WAL group commit: \(threads * perThread) records, \(syncs) fdatasyncs, \(String(format: "%.1f", ratio)) records per sync"
        )
        #expect(syncs * 4 < UInt64(threads * perThread))
    }

    /// Group commit against one writer: set CONFAB_WAL_BENCH=1 to run (wall-clock, not for CI).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONFAB_WAL_BENCH"] != nil))
    func groupCommitBenchmark() throws {
        func run(writers: Int, mode: SyncMode, seconds: Double) throws -> (
            rate: Double, p99Micros: Double, syncs: UInt64
        ) {
            let dir = Self.tempDirectory()
            defer { Self.removeDirectory(dir) }
            let wal = try WriteAheadLog(
                directory: dir, fileSystem: PosixFileSystem(), syncMode: mode, segmentBytes: 64 << 20, firstSegmentID: 1
            )
            let latencies = WALTestLockedBox<[UInt64]>([])
            let stopAt = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
            let group = DispatchGroup()
            let syncsBefore = wal.syncCount
            for w in 0..<writers {
                group.enter()
                Thread {
                    defer { group.leave() }
                    var mine: [UInt64] = []
                    let p = Self.payload(w, size: 100)
                    while DispatchTime.now().uptimeNanoseconds < stopAt {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        guard let t = try? wal.append(p), (try? wal.waitDurable(t)) != nil else { return }
                        mine.append(DispatchTime.now().uptimeNanoseconds - t0)
                    }
                    latencies.withLock { $0 += mine }
                }.start()
            }
            group.wait()
            let syncs = wal.syncCount - syncsBefore
            try wal.close()
            let all = latencies.withLock { $0 }.sorted()
            let p99 = all.isEmpty ? 0 : Double(all[min(all.count - 1, all.count * 99 / 100)]) / 1000
            return (Double(all.count) / seconds, p99, syncs)
        }
        let single = try run(writers: 1, mode: .batch, seconds: 2)
        let grouped = try run(writers: 64, mode: .group, seconds: 3)
        print(
            "WAL bench: 1 writer batch \(Int(single.rate))/s p99 \(Int(single.p99Micros))us; 64 writers group \(Int(grouped.rate))/s p99 \(Int(grouped.p99Micros))us, \(grouped.syncs) syncs; speedup \(String(format: "%.1f", grouped.rate / single.rate))x"
        )
    }

    /// The group window is the WAL's to honour: with a window of 0 the sync thread never waits
    /// for more records, with the default it waits (at least one quiet interval) before the syncs
    /// of blocked writers, and a quiet interval longer than the window is refused.
    @Test func groupCommitWindowDecidesTheGathering() throws {
        func run(_ window: GroupCommitWindow) throws -> (gathers: UInt64, syncs: UInt64) {
            let dir = Self.tempDirectory()
            defer { Self.removeDirectory(dir) }
            let wal = try WriteAheadLog(
                directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20,
                firstSegmentID: 1, groupCommit: window)
            let group = DispatchGroup()
            let failures = WALTestLockedBox<[String]>([])
            for t in 0..<4 {
                group.enter()
                Thread {
                    defer { group.leave() }
                    for i in 0..<25 {
                        do {
                            try wal.waitDurable(try wal.append(Self.payload(t * 100 + i, size: 32)))
                        } catch {
                            failures.withLock { $0.append("\(error)") }
                        }
                    }
                }.start()
            }
            group.wait()
            let counts = (wal.gatherWaits, wal.syncCount)
            try wal.close()
            #expect(failures.withLock { $0 }.isEmpty)
            #expect(try Self.replayAll(dir).2.records == 100)
            return counts
        }
        #expect(try run(GroupCommitWindow(quietMicros: 0, windowMicros: 0)).gathers == 0)
        // A sync thread finds at least one record queued, so a limit of one never waits.
        #expect(try run(GroupCommitWindow(quietMicros: 250, windowMicros: 2_000, maxWrites: 1)).gathers == 0)
        let gathered = try run(GroupCommitWindow(maxWrites: 0))
        #expect(gathered.gathers > 0)
        // Every sync of the sync thread gathered first (the one at open did not).
        #expect(gathered.gathers >= gathered.syncs - 1)

        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        #expect(throws: StorageError.self) {
            try WriteAheadLog(
                directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20,
                firstSegmentID: 1, groupCommit: GroupCommitWindow(quietMicros: 500, windowMicros: 400))
        }
    }

    @Test func asyncWaitersAreResumedBySyncThread() async throws {
        for mode in [SyncMode.group, .batch] {
            let dir = Self.tempDirectory()
            defer { Self.removeDirectory(dir) }
            let wal = try WriteAheadLog(
                directory: dir, fileSystem: PosixFileSystem(), syncMode: mode, segmentBytes: 1 << 20, firstSegmentID: 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        let t = try wal.append(Self.payload(i, size: 32))
                        try await wal.waitDurable(t)
                    }
                }
                try await group.waitForAll()
            }
            try wal.close()
            #expect(try Self.replayAll(dir).2.records == 100)
        }
    }

    @Test func batchModeSyncsBeforeEachAcknowledgement() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .batch, segmentBytes: 1 << 20, firstSegmentID: 1)
        let before = wal.syncCount
        for i in 0..<20 {
            let t = try wal.append(Self.payload(i, size: 10))
            try wal.waitDurable(t)
            try wal.waitDurable(t)  // already durable: no second sync
        }
        #expect(wal.syncCount - before == 20)
        try wal.close()
        #expect(try Self.replayAll(dir).2.records == 20)
    }

    @Test func periodicModeAcknowledgesAtOnceAndSyncsInBackground() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .periodic(milliseconds: 5), segmentBytes: 1 << 20,
            firstSegmentID: 1)
        var framed = WALRecordFormat.segmentHeaderBytes
        for i in 0..<100 {
            let p = Self.payload(i, size: 20)
            framed += WALRecordFormat.recordHeaderBytes + p.count
            let t = try wal.append(p)
            try wal.waitDurable(t)  // returns at once
        }
        let start = Date()
        // Bytes written, not the file's length: the segment is preallocated.
        while wal.bytesWritten < UInt64(framed) || wal.syncCount < 2 {
            #expect(Date().timeIntervalSince(start) < 5, "the periodic sync thread did not write the records")
            if Date().timeIntervalSince(start) >= 5 { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        // The records, plus a sync marker after each periodic sync that covered new bytes.
        let size = Int(wal.bytesWritten)
        #expect(size > framed && (size - framed) % WALRecordFormat.syncMarkerBytes == 0)
        try wal.close()
        #expect(try Self.replayAll(dir).2.records == 100)
    }

    @Test func periodicModeWritesEarlyWhenMuchIsPending() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = PosixFileSystem()
        // A period far longer than the test: only the 1 MiB threshold can make the writes happen.
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .periodic(milliseconds: 600_000), segmentBytes: 64 << 20,
            firstSegmentID: 1)
        for i in 0..<24 { _ = try wal.append(Self.payload(i, size: 100_000)) }
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        let start = Date()
        while try fs.fileSize(path) < 1 << 20, Date().timeIntervalSince(start) < 5 {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(try fs.fileSize(path) >= 1 << 20)
        try wal.close()
        #expect(try Self.replayAll(dir).2.records == 24)
    }

    @Test func acknowledgedWritesSurvivePowerLoss() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = try FaultInjectingFileSystem(root: dir)
        let walDir = joinPath(dir, "wal")
        let wal = try WriteAheadLog(
            directory: walDir, fileSystem: fs, syncMode: .group, segmentBytes: 2048, firstSegmentID: 1)
        var acknowledged: [[UInt8]] = []
        for i in 0..<100 {
            let p = Self.payload(i, size: 90)
            try wal.waitDurable(try wal.append(p))
            acknowledged.append(p)
        }
        // Appended, not acknowledged: may or may not survive, but only as a prefix.
        var unacknowledged: [[UInt8]] = []
        for i in 100..<130 {
            let p = Self.payload(i, size: 90)
            _ = try wal.append(p)
            unacknowledged.append(p)
        }
        let rebooted = try fs.reboot()
        try? wal.close()
        let (payloads, _, _) = try Self.replayAll(walDir, fs: rebooted)
        #expect(payloads.count >= acknowledged.count)
        #expect(payloads == Array((acknowledged + unacknowledged).prefix(payloads.count)))
    }

    // MARK: - Fail-stop

    @Test(arguments: [SyncMode.group, .batch])
    func failedSyncFailsWaitersAndRefusesAppends(_ mode: SyncMode) async throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let fs = WALSyncFailingFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: mode, segmentBytes: 1 << 20, firstSegmentID: 1)
        let ok = try wal.append([1])
        try await wal.waitDurable(ok)

        fs.failSyncs = true
        let doomed = try wal.append([2])
        let error = try #require(throws: StorageError.self) { try wal.waitDurable(doomed) }
        #expect(error.code == .diskFull)
        // Every later wait for an uncovered ticket fails too, including async ones.
        await #expect(throws: StorageError.self) { try await wal.waitDurable(doomed) }
        // What was durable before stays acknowledged.
        try await wal.waitDurable(ok)
        // Fail-stop: no further appends, even once the disk has space again.
        fs.failSyncs = false
        let refused = try #require(throws: StorageError.self) { _ = try wal.append([3]) }
        #expect(refused.code == .diskFull)
        #expect(refused.message.contains("stopped"))
        #expect(throws: StorageError.self) { _ = try wal.rollSegment() }
        #expect(throws: StorageError.self) { try wal.close() }
    }

    @Test func appendsAfterCloseAreRefused() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        let t = try wal.append([9])
        try wal.close()
        try wal.waitDurable(t)  // close synced it
        let error = try #require(throws: StorageError.self) { _ = try wal.append([1]) }
        #expect(error.code == .closed)
        try wal.close()  // idempotent
    }

    @Test func oversizedRecordIsRejected() throws {
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        defer { try? wal.close() }
        let error = try #require(throws: StorageError.self) {
            _ = try wal.append([UInt8](repeating: 0, count: (64 << 20) + 1))
        }
        #expect(error.code == .tooLarge)
    }

    // MARK: - Preallocation

    /// A segment reserves its full size when created (so an fdatasync writes data, not the
    /// inode's new length), is cut back to its records when closed, and a crash that leaves the
    /// reserved zeros replays every acknowledged record with no torn tail reported.
    @Test func aSegmentIsPreallocatedAndACrashLeavesNoTornTail() throws {
        let dir = Self.tempDirectory()
        let crashed = Self.tempDirectory()
        defer {
            Self.removeDirectory(dir)
            Self.removeDirectory(crashed)
        }
        let fs = PosixFileSystem()
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: fs, syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        var expected: [[UInt8]] = []
        for i in 0..<50 {
            let p = Self.payload(i, size: 100)
            expected.append(p)
            try wal.waitDurable(try wal.append(p))
        }
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)
        #expect(try fs.fileSize(path) == 1 << 20, "the segment was not preallocated")

        // A process crash now leaves the file as it is.
        let copy = WriteAheadLog.segmentPath(directory: crashed, id: 1)
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let written = Int(wal.bytesWritten)
        let (payloads, _, report) = try Self.replayAll(crashed)
        #expect(payloads == expected)
        #expect(report.truncatedTail == nil, "reserved zeros were reported as a torn tail")
        #expect(try fs.fileSize(copy) == written, "replay did not cut the unused space")

        try wal.close()
        #expect(try fs.fileSize(path) == Int(wal.bytesWritten), "close did not cut the segment to its records")
        #expect(try Self.replayAll(dir).0 == expected)
    }

    // MARK: - Dump tool

    @Test func dumpToolReportsRecordsTornTailsAndCorruption() throws {
        guard let binary = confabExecutablePath() else {
            Issue.record("confab binary not found next to the test bundle")
            return
        }
        let dir = Self.tempDirectory()
        defer { Self.removeDirectory(dir) }
        let wal = try WriteAheadLog(
            directory: dir, fileSystem: PosixFileSystem(), syncMode: .group, segmentBytes: 1 << 20, firstSegmentID: 1)
        for i in 0..<5 {
            var m = Mutation(table: 3, partitionKey: [0, 0, 0, 0, 0, 0, 0, UInt8(i)])
            m.rows.append(
                .init(
                    clustering: ClusteringKey([.int64(1_700_000_000), .bytes(Array("msg-\(i)".utf8))]).bytes,
                    fragment: RowFragment(cells: [Cell(column: 1, timestamp: 99, value: Array("hello \(i)".utf8))])))
            _ = try wal.append(m.encoded())
        }
        try wal.sync()
        try wal.close()
        let path = WriteAheadLog.segmentPath(directory: dir, id: 1)

        func run(_ args: [String]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["wal", "dump", path] + args
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        var (status, out) = try run([])
        #expect(status == 0)
        #expect(out.contains("5 records"))
        #expect(out.contains("partition 4 (bigint)"))
        #expect(out.contains("(1700000000, msg-2)"))
        #expect(out.contains("\"hello 3\""))

        // Zeros to the end: unused preallocated space, not damage.
        let fs = PosixFileSystem()
        let closedLength = try fs.fileSize(path)
        try Self.appendRaw(path, [UInt8](repeating: 0, count: 100))
        (status, out) = try run([])
        #expect(status == 0)
        #expect(out.contains("all records intact") && out.contains("unused preallocated space"), "\(out)")
        try fs.truncate(path, to: closedLength)

        // Half a record header: a torn tail.
        try Self.appendRaw(path, Array(WALRecordFormat.framedRecord([1, 2, 3]).prefix(7)))
        (status, out) = try run(["--json"])
        #expect(status == 0)
        let lines = out.split(separator: "\n")
        #expect(lines.count == 1 + 5 + 1 + 1)
        #expect(lines.last?.contains("\"status\":\"torn tail\"") == true)

        let bytes = try Self.fileBytes(path)
        try Self.overwrite(path, at: 24 + 20, with: [bytes[24 + 20] ^ 1])
        (status, out) = try run(["--payloads"])
        #expect(status == 1)
        #expect(out.contains("CORRUPTION: first bad record at offset 24"))
    }
}

/// A value behind a lock, for collecting results from threads.
private final class WALTestLockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// The real file system, except that file syncs fail with ENOSPC while `failSyncs` is set.
private final class WALSyncFailingFileSystem: FileSystem, @unchecked Sendable {
    private let base = PosixFileSystem()
    private let lock = NSLock()
    private var failing = false
    var failSyncs: Bool {
        get { lock.withLock { failing } }
        set { lock.withLock { failing = newValue } }
    }

    final class File: WritableFile, @unchecked Sendable {
        let inner: any WritableFile
        unowned let owner: WALSyncFailingFileSystem
        init(_ inner: any WritableFile, owner: WALSyncFailingFileSystem) {
            self.inner = inner
            self.owner = owner
        }
        var path: String { inner.path }
        var size: Int { inner.size }
        func append(_ bytes: UnsafeRawBufferPointer) throws { try inner.append(bytes) }
        func sync() throws {
            if owner.failSyncs {
                throw StorageError(.diskFull, "fdatasync failed: injected ENOSPC", path: path, errno: 28)
            }
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
