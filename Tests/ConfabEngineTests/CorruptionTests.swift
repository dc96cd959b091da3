import ConfabEngine
import Foundation
import Testing

/// A flipped byte in any engine file — a WAL segment in the middle of the log, an SSTable data
/// block, the manifest — is reported as `StorageError(.corruption)` naming the file (and offset
/// where there is one), at open or at the read that touches it. Never served as wrong data, never
/// a trap. File names and layouts: docs/engine.md, wal_format.md, sstable_format.md,
/// manifest_format.md.
@Suite("Corruption (engine level)", .serialized)
struct CorruptionTests {
    /// Deterministic engine: no background threads, so the files are exactly what the test made.
    private func options(walSegmentBytes: Int = 64 << 20) -> EngineOptions {
        var o = EngineOptions()
        o.syncMode = .batch
        o.backgroundWork = false
        o.walSegmentBytes = walSegmentBytes
        return o
    }

    /// Writes ids `1...count` and returns them.
    private func write(_ engine: StorageEngine, ids: ClosedRange<Int64>) throws -> [Int64] {
        for id in ids { try engine.write(CrashWorkload.mutation(id)) }
        return Array(ids)
    }

    private func flipByte(_ path: String, at offset: Int) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let old = try #require(try handle.read(upToCount: 1)?.first, "offset \(offset) is past the end of \(path)")
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [old ^ 0x5A])
    }

    private func fileSize(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
    }

    private func files(in dir: String, prefix: String, suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.sorted().map { dir + "/" + $0 }
    }

    /// Runs `body`, which must fail with `.corruption` naming `path` (and `offset` when given).
    private func expectCorruption(
        path: String, offset: Int? = nil, alsoAllowed: [StorageError.Code] = [], _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("\(what): the damage was not detected", sourceLocation: sourceLocation)
        } catch let e as StorageError {
            #expect(
                e.code == .corruption || alsoAllowed.contains(e.code), "\(what): wrong code: \(e)",
                sourceLocation: sourceLocation)
            #expect(
                e.path.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                    == URL(fileURLWithPath: path).standardizedFileURL.path,
                "\(what): the error does not name the damaged file: \(e)", sourceLocation: sourceLocation)
            if let offset {
                #expect(e.offset == offset, "\(what): wrong offset: \(e)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("\(what): not a StorageError: \(error)", sourceLocation: sourceLocation)
        }
    }

    // MARK: WAL

    /// A flipped payload byte in the first record of a segment that is neither the first nor the
    /// newest: replay must stop with corruption at that record, not truncate the log there (which
    /// would silently drop every later acknowledged write).
    @Test func walSegmentInTheMiddleOfTheLog() throws {
        let dir = try TestDirectory(prefix: "corrupt-wal")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options(walSegmentBytes: 16 << 10))
            _ = try write(engine, ids: 1...400)
            try engine.close()
        }
        let segments = try files(in: data, prefix: "wal-", suffix: ".log")
        try #require(segments.count >= 3, "expected several WAL segments, found \(segments)")
        let victim = segments[segments.count / 2]
        try flipByte(victim, at: 24 + 12 + 3)  // payload of the first record after the 24-byte header
        expectCorruption(path: victim, offset: 24, "WAL segment \(victim)") {
            let engine = try StorageEngine.open(directory: data, options: options(walSegmentBytes: 16 << 10))
            try engine.close()
        }
    }

    /// A flipped byte in a record header in the newest segment, with intact records after it: a
    /// flipped byte, not a torn tail.
    @Test func walRecordInTheMiddleOfTheNewestSegment() throws {
        let dir = try TestDirectory(prefix: "corrupt-wal")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            for id in Int64(1)...200 {
                try engine.write(
                    TestMessages.mutation(
                        chatId: id % 97, timestamp: id, messageId: CrashWorkload.messageId(id),
                        sender: "s", body: String(repeating: "b", count: 100), writeTime: id))
            }
            try engine.close()
        }
        let segments = try files(in: data, prefix: "wal-", suffix: ".log")
        let victim = try #require(segments.last)
        let size = try fileSize(victim)
        // Walk the records (docs/wal_format.md) to find the header of one in the middle.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: victim)))
        var offset = 24
        var recordOffsets: [Int] = []
        while offset + 12 <= size {
            let field =
                Int(bytes[offset + 4]) | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6]) << 16 | Int(
                    bytes[offset + 7]) << 24
            // Bit 31 marks a sync marker (8-byte payload), not a record.
            if field & 0x8000_0000 == 0 { recordOffsets.append(offset) }
            offset += 12 + (field & 0x7FFF_FFFF)
        }
        try #require(
            recordOffsets.count >= 100, "expected the 200 records in the newest segment, found \(recordOffsets.count)")
        let bad = recordOffsets[recordOffsets.count / 2]
        try flipByte(victim, at: bad + 5)  // the length field
        expectCorruption(path: victim, offset: bad, "WAL record at \(bad)") {
            let engine = try StorageEngine.open(directory: data, options: options())
            try engine.close()
        }
    }

    // MARK: SSTable

    /// A flipped byte in the first data block of the only SSTable: open may not notice (blocks are
    /// read lazily), but the read that needs the block must fail with corruption naming the table
    /// and the block's offset (0), and no read may return wrong content.
    @Test func sstableDataBlock() throws {
        let dir = try TestDirectory(prefix: "corrupt-sst")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            _ = try write(engine, ids: 1...600)
            try engine.flush()
            try engine.close()
        }
        let tables = try files(in: data, prefix: "sst-", suffix: ".db")
        let victim = try #require(tables.first)
        try #require(tables.count == 1, "one flush should make one table: \(tables)")
        try flipByte(victim, at: 10)

        let engine: StorageEngine
        do {
            engine = try StorageEngine.open(directory: data, options: options())
        } catch let e as StorageError {
            // Detected already at open: fine, if it is reported properly.
            #expect(e.code == .corruption && e.path == victim, "\(e)")
            return
        }
        defer { try? engine.close() }
        var detected: [StorageError] = []
        var served = 0
        for chat in 0..<CrashWorkload.partitions {
            var query = TestMessages.latest(chatId: chat, limit: 1000)
            do {
                while true {
                    let result = try engine.read(query)
                    for row in result.rows {
                        let message = try #require(
                            TestMessages.message(from: row), "undecodable row served from a damaged table")
                        let id = try #require(
                            CrashWorkload.id(fromMessageId: message.messageId),
                            "foreign message id \(message.messageId) served")
                        if let wrong = CrashWorkload.mismatch(
                            messageId: message.messageId, timestamp: message.timestamp, sender: message.sender,
                            body: message.body, id: id)
                        {
                            Issue.record("wrong content served for id \(id) from a damaged table: \(wrong)")
                        }
                        served += 1
                    }
                    guard let cursor = result.cursor, !result.rows.isEmpty else { break }
                    query.cursor = cursor
                }
            } catch let e as StorageError {
                detected.append(e)
            }
        }
        #expect(!detected.isEmpty, "no read reported the damaged data block (\(served) rows served)")
        for e in detected {
            #expect(e.code == .corruption, "\(e)")
            #expect(e.path == victim, "\(e)")
            #expect(e.offset == 0, "the damaged block starts at offset 0: \(e)")
        }
        #expect(served + detected.count > 0)
    }

    /// The footer (last bytes of the table) is checked when the table is opened.
    @Test func sstableFooter() throws {
        let dir = try TestDirectory(prefix: "corrupt-sst")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            _ = try write(engine, ids: 1...100)
            try engine.flush()
            try engine.close()
        }
        let victim = try #require(try files(in: data, prefix: "sst-", suffix: ".db").first)
        try flipByte(victim, at: try fileSize(victim) - 3)
        expectCorruption(path: victim, "SSTable footer") {
            let engine = try StorageEngine.open(directory: data, options: options())
            try engine.close()
        }
    }

    /// A listed SSTable that has disappeared.
    @Test func sstableMissing() throws {
        let dir = try TestDirectory(prefix: "corrupt-sst")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            _ = try write(engine, ids: 1...100)
            try engine.flush()
            try engine.close()
        }
        let victim = try #require(try files(in: data, prefix: "sst-", suffix: ".db").first)
        try FileManager.default.removeItem(atPath: victim)
        expectCorruption(path: victim, "missing SSTable") {
            let engine = try StorageEngine.open(directory: data, options: options())
            try engine.close()
        }
    }

    // MARK: Manifest

    @Test(arguments: [("magic", 2), ("version", 9), ("checksum", 17), ("body", 21)])
    func manifestByte(field: String, offset: Int) throws {
        let dir = try TestDirectory(prefix: "corrupt-manifest")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            _ = try write(engine, ids: 1...100)
            try engine.flush()
            try engine.close()
        }
        let manifest = data + "/MANIFEST"
        try flipByte(manifest, at: offset)
        // A flipped version byte reads as an unknown version: `.unsupportedVersion` is as good.
        let also: [StorageError.Code] = field == "version" ? [.unsupportedVersion] : []
        expectCorruption(path: manifest, alsoAllowed: also, "MANIFEST \(field) byte at \(offset)") {
            let engine = try StorageEngine.open(directory: data, options: options())
            try engine.close()
        }
    }

    /// The manifest cut short (a torn write would have been caught by the rename protocol, so this
    /// is damage).
    @Test func manifestTruncated() throws {
        let dir = try TestDirectory(prefix: "corrupt-manifest")
        let data = dir.file("data")
        do {
            let engine = try StorageEngine.open(directory: data, options: options())
            _ = try write(engine, ids: 1...100)
            try engine.flush()
            try engine.close()
        }
        let manifest = data + "/MANIFEST"
        let handle = try #require(FileHandle(forUpdatingAtPath: manifest))
        try handle.truncate(atOffset: UInt64(try fileSize(manifest) - 1))
        try handle.close()
        expectCorruption(path: manifest, "truncated MANIFEST") {
            let engine = try StorageEngine.open(directory: data, options: options())
            try engine.close()
        }
    }
}
