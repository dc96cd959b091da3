/// One intact record of a segment.
package struct WALRecord: Sendable, Hashable {
    /// Byte offset of the record header in the segment file.
    package var offset: Int
    package var payload: [UInt8]
    /// Bytes the record occupies in the file (header + payload).
    package var framedBytes: Int { WALRecordFormat.recordHeaderBytes + payload.count }
}

/// The first record of a segment that does not check out, and what follows it.
package struct WALBadRecord: Sendable, Hashable, CustomStringConvertible {
    /// Where the bad record starts; everything before it is intact.
    package var offset: Int
    /// Why it is bad ("record header checksum mismatch", ...).
    package var reason: String
    /// Payload length from the record header, when that header's checksum holds.
    package var length: Int?
    /// Offset of an intact record found after the bad one. When there is one, the damage is not a
    /// torn tail: something valid was written after it.
    package var validRecordFollowsAt: Int?
    /// Damage that is never a torn tail whatever follows (a complete segment header that is wrong,
    /// a segment whose header names another id).
    package var alwaysCorruption: Bool

    /// True when the damage has the shape of a crash mid-append: nothing valid follows it. It *is*
    /// a torn tail when the segment is the newest one; in an older segment it is corruption.
    package var looksLikeTornTail: Bool { !alwaysCorruption && validRecordFollowsAt == nil }

    package var description: String {
        var s = "offset \(offset): \(reason)"
        if let v = validRecordFollowsAt { s += "; a valid record follows at offset \(v)" }
        return s
    }
}

/// Reads one segment file record by record, checking every checksum. Used by replay and by
/// `confab wal dump`. It never throws for damaged bytes: it stops at the first bad record and
/// describes it in `badRecord` (with whether anything valid follows), so the caller decides between
/// "torn tail" and "corruption". It throws only for I/O errors and an unsupported format version.
///
/// Reads through a 1 MiB window, so replay does not cost a system call per record.
package final class WALSegmentReader {
    package let path: String
    package let fileSize: Int
    /// The id in the segment header, when the header is intact.
    package private(set) var segmentID: UInt64?
    /// The first bad record (or bad segment header, at offset 0); nil while everything is intact.
    package private(set) var badRecord: WALBadRecord?
    /// Offset just past the last intact record read so far (where a torn tail is cut).
    package private(set) var position: Int

    private let file: any ReadableFile
    private var window: [UInt8] = []
    private var windowStart = 0
    private static let windowBytes = 1 << 20

    /// Opens `path` and checks its segment header. `expectedSegmentID` (from the file name) makes a
    /// header naming another segment a corruption: a stale or renamed file.
    package init(path: String, fileSystem: any FileSystem, expectedSegmentID: UInt64? = nil) throws {
        self.path = path
        self.file = try fileSystem.openForReading(path)
        self.fileSize = file.size
        self.position = 0
        try checkHeader(expectedSegmentID: expectedSegmentID)
    }

    deinit { try? file.close() }

    package func close() { try? file.close() }

    private func checkHeader(expectedSegmentID: UInt64?) throws {
        // An empty file: a crash right after the create, before the header; nothing was ever
        // acknowledged in it.
        if fileSize == 0 { return }
        let headerBytes = WALRecordFormat.segmentHeaderBytes
        let head = try read(at: 0, count: min(headerBytes, fileSize))
        switch WALRecordFormat.checkSegmentHeader(head) {
        case .valid(let id):
            if let expected = expectedSegmentID, expected != id {
                badRecord = WALBadRecord(offset: 0, reason: "segment header names segment \(id) but the file name says \(expected) (a stale or renamed file)", validRecordFollowsAt: nil, alwaysCorruption: true)
                return
            }
            segmentID = id
            position = headerBytes
        case .incomplete:
            let follows = fileSize > headerBytes ? try findValidRecord(from: 1) : nil
            let reason = fileSize < headerBytes
                ? "incomplete segment header (\(fileSize) of \(headerBytes) bytes)"
                : "segment header is all zeros"
            badRecord = WALBadRecord(offset: 0, reason: reason, validRecordFollowsAt: follows, alwaysCorruption: false)
        case .invalid(let why):
            badRecord = WALBadRecord(offset: 0, reason: why, validRecordFollowsAt: try findValidRecord(from: 1), alwaysCorruption: true)
        case .unsupportedVersion(let v):
            throw StorageError(.unsupportedVersion, "WAL segment has format version \(v); this build reads version \(WALRecordFormat.formatVersion)", path: path, offset: 8)
        }
    }

    /// The next intact record, or nil at the end of the segment or at the first bad record
    /// (then `badRecord` says what is wrong).
    package func next() throws -> WALRecord? {
        guard badRecord == nil, position < fileSize else { return nil }
        let hdr = WALRecordFormat.recordHeaderBytes
        let remaining = fileSize - position
        guard remaining >= hdr else {
            fail("incomplete record header (\(remaining) of \(hdr) bytes before the end of the file)", length: nil, follows: nil)
            return nil
        }
        let (storedHeaderCRC, length, dataCRC) = try withBytes(at: position, count: hdr) { raw in
            (UInt32.loadLE(raw, at: 0), UInt32.loadLE(raw, at: 4), UInt32.loadLE(raw, at: 8))
        }
        guard WALRecordFormat.headerCRC(length: length, dataCRC: dataCRC) == storedHeaderCRC else {
            let zero = storedHeaderCRC == 0 && length == 0 && dataCRC == 0
            fail(zero ? "zero-filled bytes where a record header should be" : "record header checksum mismatch",
                 length: nil, follows: try findValidRecord(from: position + 1))
            return nil
        }
        let n = Int(length)
        guard n <= WALRecordFormat.maxPayloadBytes else {
            fail("record length \(n) exceeds the limit of \(WALRecordFormat.maxPayloadBytes) bytes", length: n, follows: try findValidRecord(from: position + 1))
            return nil
        }
        guard n <= remaining - hdr else {
            // The header is intact, so nothing can start inside the claimed payload: a torn append.
            fail("record payload is cut short: the header says \(n) bytes, \(remaining - hdr) remain in the file", length: n, follows: nil)
            return nil
        }
        let payload = try read(at: position + hdr, count: n)
        let actual = payload.withUnsafeBytes { CRC32C.mask(CRC32C.checksum($0)) }
        guard actual == dataCRC else {
            fail("payload checksum mismatch (\(n) bytes)", length: n, follows: try findValidRecord(from: position + hdr + n))
            return nil
        }
        let record = WALRecord(offset: position, payload: payload)
        position += hdr + n
        return record
    }

    private func fail(_ reason: String, length: Int?, follows: Int?) {
        badRecord = WALBadRecord(offset: position, reason: reason, length: length, validRecordFollowsAt: follows, alwaysCorruption: false)
    }

    /// The first offset at or after `start` where an intact record begins, or nil. Tries every byte
    /// offset: the 8-byte header checksum rejects almost every position cheaply, and all-zero
    /// headers (the usual shape of a torn tail) are skipped without a checksum.
    package func findValidRecord(from start: Int) throws -> Int? {
        let hdr = WALRecordFormat.recordHeaderBytes
        var q = start
        while q + hdr <= fileSize {
            let chunk = min(fileSize - q, Self.windowBytes)
            let hit: (Int, Int)? = try withBytes(at: q, count: chunk) { raw in
                var i = 0
                while i + hdr <= raw.count {
                    let stored = UInt32.loadLE(raw, at: i)
                    let length = UInt32.loadLE(raw, at: i + 4)
                    let dataCRC = UInt32.loadLE(raw, at: i + 8)
                    if stored | length | dataCRC != 0,
                       WALRecordFormat.headerCRC(length: length, dataCRC: dataCRC) == stored,
                       Int(length) <= WALRecordFormat.maxPayloadBytes,
                       q + i + hdr + Int(length) <= fileSize {
                        return (q + i, Int(length))
                    }
                    i += 1
                }
                return nil
            }
            if let (at, length) = hit {
                let payload = try file.read(at: at + hdr, count: length)
                let dataCRC = try withBytes(at: at + 8, count: 4) { UInt32.loadLE($0) }
                if payload.withUnsafeBytes({ CRC32C.mask(CRC32C.checksum($0)) }) == dataCRC { return at }
                q = at + 1
            } else {
                // Positions whose 12 bytes were all inside the chunk were tried.
                q += max(1, chunk - hdr + 1)
            }
        }
        return nil
    }

    // MARK: - Windowed reading

    private func read(at offset: Int, count: Int) throws -> [UInt8] {
        if count > Self.windowBytes { return try file.read(at: offset, count: count) }
        return try withBytes(at: offset, count: count) { Array($0) }
    }

    private func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if offset < windowStart || offset + count > windowStart + window.count {
            let length = min(max(count, Self.windowBytes), fileSize - offset)
            window = try file.read(at: offset, count: length)
            windowStart = offset
        }
        return try window.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[(offset - windowStart)..<(offset - windowStart + count)]))
        }
    }
}
