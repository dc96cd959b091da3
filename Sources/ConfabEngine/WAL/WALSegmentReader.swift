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
    /// How far the segment is known to have been fdatasynced: the largest synced length named by
    /// an intact sync marker anywhere in the file (before or after the damage), or 0 when there is
    /// none. nil for a version 1 segment, which has no markers.
    package var syncedThrough: Int? = nil

    /// True when the damage may be a crash mid-append rather than corruption. With sync markers
    /// (version 2): the damage lies beyond the synced prefix, where a power loss may have persisted
    /// any subset of the unsynced pages, so intact records after it prove nothing. Without
    /// (version 1): nothing valid follows it. It *is* a torn tail when the segment is the newest
    /// one; in an older segment (synced in full before the next was created) it is corruption.
    package var looksLikeTornTail: Bool {
        if alwaysCorruption { return false }
        if let syncedThrough { return offset >= syncedThrough }
        return validRecordFollowsAt == nil
    }

    package var description: String {
        var s = "offset \(offset): \(reason)"
        if let v = validRecordFollowsAt { s += "; a valid record follows at offset \(v)" }
        if let t = syncedThrough, t > 0 { s += "; the segment was synced through offset \(t)" }
        return s
    }
}

/// Reads one segment file record by record, checking every checksum; sync markers are checked
/// and consumed (they raise `syncedThrough`), never returned as records. Used by replay and by
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
    /// Format version from the segment header, when the header is intact.
    package private(set) var formatVersion: UInt32?
    /// The largest synced length named by an intact sync marker read so far (0 when none).
    package private(set) var syncedThrough = 0
    /// Where the records end and zeros run to the end of the file, past everything synced: the
    /// unused part of a preallocated segment (a crash left it uncut). nil otherwise.
    package private(set) var preallocatedFrom: Int?

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
        case .valid(let id, let version):
            if let expected = expectedSegmentID, expected != id {
                badRecord = WALBadRecord(
                    offset: 0,
                    reason:
                        "segment header names segment \(id) but the file name says \(expected) (a stale or renamed file)",
                    validRecordFollowsAt: nil, alwaysCorruption: true)
                return
            }
            segmentID = id
            formatVersion = version
            position = headerBytes
        case .incomplete:
            let follows = fileSize > headerBytes ? try findValidRecord(from: 1) : nil
            let reason =
                fileSize < headerBytes
                ? "incomplete segment header (\(fileSize) of \(headerBytes) bytes)"
                : "segment header is all zeros"
            // A header lost with the unsynced pages of a new segment, unless a sync marker proves
            // the segment (header included) was synced.
            badRecord = WALBadRecord(
                offset: 0, reason: reason, validRecordFollowsAt: follows, alwaysCorruption: false,
                syncedThrough: fileSize > headerBytes ? try syncedLengthNamed(from: 1) : 0)
        case .invalid(let why):
            badRecord = WALBadRecord(
                offset: 0, reason: why, validRecordFollowsAt: try findValidRecord(from: 1), alwaysCorruption: true)
        case .unsupportedVersion(let v):
            throw StorageError(
                .unsupportedVersion,
                "WAL segment has format version \(v); this build reads version \(WALRecordFormat.formatVersion)",
                path: path, offset: 8)
        }
    }

    /// The next intact record, or nil at the end of the segment or at the first bad record
    /// (then `badRecord` says what is wrong). Sync markers on the way are consumed.
    package func next() throws -> WALRecord? {
        while true {
            guard badRecord == nil, preallocatedFrom == nil, position < fileSize else { return nil }
            let hdr = WALRecordFormat.recordHeaderBytes
            let remaining = fileSize - position
            guard remaining >= hdr else {
                try fail(
                    "incomplete record header (\(remaining) of \(hdr) bytes before the end of the file)", length: nil,
                    follows: nil)
                return nil
            }
            let (storedHeaderCRC, rawLength, dataCRC) = try withBytes(at: position, count: hdr) { raw in
                (UInt32.loadLE(raw, at: 0), UInt32.loadLE(raw, at: 4), UInt32.loadLE(raw, at: 8))
            }
            guard WALRecordFormat.headerCRC(length: rawLength, dataCRC: dataCRC) == storedHeaderCRC else {
                let zero = storedHeaderCRC == 0 && rawLength == 0 && dataCRC == 0
                // A preallocated segment's unused space: zeros from here to the end, and nothing
                // synced lies in it, so nothing acknowledged is missing. Not damage.
                if zero, formatVersion != 1, position >= syncedThrough, try zerosToEnd(from: position) {
                    preallocatedFrom = position
                    return nil
                }
                try fail(
                    zero ? "zero-filled bytes where a record header should be" : "record header checksum mismatch",
                    length: nil, follows: try findValidRecord(from: position + 1))
                return nil
            }
            let isMarker = rawLength & WALRecordFormat.syncMarkerFlag != 0 && formatVersion != 1
            let n = Int(isMarker ? rawLength & ~WALRecordFormat.syncMarkerFlag : rawLength)
            guard n <= WALRecordFormat.maxPayloadBytes else {
                try fail(
                    "record length \(n) exceeds the limit of \(WALRecordFormat.maxPayloadBytes) bytes", length: n,
                    follows: try findValidRecord(from: position + 1))
                return nil
            }
            guard !isMarker || n == WALRecordFormat.syncMarkerPayloadBytes else {
                try fail(
                    "sync marker with a \(n)-byte payload (must be \(WALRecordFormat.syncMarkerPayloadBytes))",
                    length: n, follows: try findValidRecord(from: position + hdr + n))
                return nil
            }
            guard n <= remaining - hdr else {
                // The header is intact, so nothing can start inside the claimed payload: a torn append.
                try fail(
                    "record payload is cut short: the header says \(n) bytes, \(remaining - hdr) remain in the file",
                    length: n, follows: nil)
                return nil
            }
            let payload = try read(at: position + hdr, count: n)
            let actual = payload.withUnsafeBytes { CRC32C.mask(CRC32C.checksum($0)) }
            guard actual == dataCRC else {
                try fail(
                    "payload checksum mismatch (\(n) bytes)", length: n,
                    follows: try findValidRecord(from: position + hdr + n))
                return nil
            }
            if isMarker {
                let synced = Int(truncatingIfNeeded: payload.withUnsafeBytes { UInt64.loadLE($0, at: 0) })
                // Written after the sync it reports, so it can only name an offset at or before itself.
                guard synced >= 0, synced <= position else {
                    try fail(
                        "sync marker names synced length \(synced), beyond its own offset", length: n,
                        follows: try findValidRecord(from: position + hdr + n))
                    return nil
                }
                syncedThrough = max(syncedThrough, synced)
                position += hdr + n
                continue
            }
            let record = WALRecord(offset: position, payload: payload)
            position += hdr + n
            return record
        }
    }

    private func fail(_ reason: String, length: Int?, follows: Int?) throws {
        var bad = WALBadRecord(
            offset: position, reason: reason, length: length, validRecordFollowsAt: follows, alwaysCorruption: false)
        if formatVersion != 1 {
            // Markers after the damage count too: a flipped byte in a synced record is followed by
            // the marker its sync wrote.
            let later = follows == nil ? 0 : try syncedLengthNamed(from: follows!)
            bad.syncedThrough = max(syncedThrough, later)
        }
        badRecord = bad
    }

    /// The largest synced length named by an intact sync marker at or after `start` (0 if none).
    /// Walks intact records found by scanning; only used once damage has been found.
    package func syncedLengthNamed(from start: Int) throws -> Int {
        var best = 0
        var q = start
        while let found = try findIntact(from: q) {
            if let synced = found.syncedLength, synced <= found.offset { best = max(best, synced) }
            q = found.offset + WALRecordFormat.recordHeaderBytes + found.length
        }
        return best
    }

    /// The first offset at or after `start` where an intact record (or sync marker) begins, or
    /// nil. Tries every byte offset: the 8-byte header checksum rejects almost every position
    /// cheaply, and all-zero headers (the usual shape of a torn tail) are skipped without a checksum.
    package func findValidRecord(from start: Int) throws -> Int? {
        try findIntact(from: start)?.offset
    }

    private func findIntact(from start: Int) throws -> (offset: Int, length: Int, syncedLength: Int?)? {
        let hdr = WALRecordFormat.recordHeaderBytes
        let flag = WALRecordFormat.syncMarkerFlag
        var q = start
        while q + hdr <= fileSize {
            let chunk = min(fileSize - q, Self.windowBytes)
            let hit: (Int, Int, Bool)? = try withBytes(at: q, count: chunk) { raw in
                var i = 0
                while i + hdr <= raw.count {
                    let stored = UInt32.loadLE(raw, at: i)
                    let rawLength = UInt32.loadLE(raw, at: i + 4)
                    let dataCRC = UInt32.loadLE(raw, at: i + 8)
                    if stored | rawLength | dataCRC != 0,
                        WALRecordFormat.headerCRC(length: rawLength, dataCRC: dataCRC) == stored
                    {
                        let isMarker = rawLength & flag != 0
                        let length = Int(rawLength & ~flag)
                        if !isMarker || length == WALRecordFormat.syncMarkerPayloadBytes,
                            length <= WALRecordFormat.maxPayloadBytes,
                            q + i + hdr + length <= fileSize
                        {
                            return (q + i, length, isMarker)
                        }
                    }
                    i += 1
                }
                return nil
            }
            if let (at, length, isMarker) = hit {
                let payload = try file.read(at: at + hdr, count: length)
                let dataCRC = try withBytes(at: at + 8, count: 4) { UInt32.loadLE($0) }
                if payload.withUnsafeBytes({ CRC32C.mask(CRC32C.checksum($0)) }) == dataCRC {
                    let synced =
                        isMarker ? Int(truncatingIfNeeded: payload.withUnsafeBytes { UInt64.loadLE($0, at: 0) }) : nil
                    return (at, length, synced)
                }
                q = at + 1
            } else {
                // Positions whose 12 bytes were all inside the chunk were tried.
                q += max(1, chunk - hdr + 1)
            }
        }
        return nil
    }

    /// True when every byte from `start` to the end of the file is zero.
    private func zerosToEnd(from start: Int) throws -> Bool {
        var q = start
        while q < fileSize {
            let chunk = min(fileSize - q, Self.windowBytes)
            let allZero = try withBytes(at: q, count: chunk) { raw in raw.allSatisfy { $0 == 0 } }
            if !allZero { return false }
            q += chunk
        }
        return true
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
