/// The byte layout of a write-ahead-log segment: a 24-byte segment header, then framed records.
/// Documented byte by byte in docs/wal_format.md; this type is the single place that encodes and
/// checks it, so the writer, replay and `confab wal dump` cannot disagree.
///
///     segment header (24 bytes)
///       +0   8 bytes  magic "CONFABWL"
///       +8   u32 LE   format version (2; version 1 segments, without sync markers, are read too)
///       +12  u64 LE   segment id (must match the file name)
///       +20  u32 LE   masked CRC32C of bytes +0..<+20
///
///     record (12-byte header + payload)
///       +0   u32 LE   header CRC: masked CRC32C of bytes +4..<+12 (length and payload CRC)
///       +4   u32 LE   payload length (at most `maxPayloadBytes`); bit 31 set marks a sync marker
///       +8   u32 LE   payload CRC: masked CRC32C of the payload
///       +12  payload
///
///     sync marker (version 2): a record with bit 31 of the length set and an 8-byte payload,
///       u64 LE synced length: the segment was fdatasynced through this offset when it was written
///
/// The header has its own checksum so that a reader can trust a length before reading the payload,
/// and so that scanning every byte offset for "is a valid record here?" (the test that separates a
/// torn tail from mid-log corruption) costs a checksum of 8 bytes per offset, not of a payload.
package enum WALRecordFormat {
    package static let magic: [UInt8] = Array("CONFABWL".utf8)
    /// The version this build writes.
    package static let formatVersion: UInt32 = 2
    /// Versions this build reads: 1 has no sync markers, so its synced prefix is unknown.
    package static let readableVersions: ClosedRange<UInt32> = 1...2
    /// Bit 31 of a record's length field: the record is a sync marker, not a payload.
    package static let syncMarkerFlag: UInt32 = 0x8000_0000
    package static let syncMarkerPayloadBytes = 8
    package static let syncMarkerBytes = recordHeaderBytes + syncMarkerPayloadBytes
    package static let segmentHeaderBytes = 24
    package static let recordHeaderBytes = 12
    /// Largest payload one record may carry.
    package static let maxPayloadBytes = 64 << 20

    /// File name of a segment: "wal-<id as 20-digit zero-padded decimal>.log", so names sort by id.
    package static func segmentFileName(_ id: UInt64) -> String {
        "wal-" + String(id).leftPad(20) + ".log"
    }

    /// The id in a segment file name, or nil if `name` is not one.
    package static func segmentID(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("wal-"), name.hasSuffix(".log") else { return nil }
        let digits = name.dropFirst(4).dropLast(4)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }

    package static func segmentHeader(id: UInt64) -> [UInt8] {
        var out = magic
        out.reserveCapacity(segmentHeaderBytes)
        out.appendLE32(formatVersion)
        out.appendLE64(id)
        let crc = out.withUnsafeBytes { CRC32C.checksum($0) }
        out.appendLE32(CRC32C.mask(crc))
        return out
    }

    /// What a segment header says, or why it cannot be trusted.
    package enum HeaderCheck: Equatable, Sendable {
        case valid(segmentID: UInt64, version: UInt32)
        /// Fewer than 24 bytes, or all zeros: a crash while the segment was being created.
        case incomplete
        /// Complete but wrong: not a WAL segment, or damaged.
        case invalid(String)
        /// A valid header of a newer format this build cannot read.
        case unsupportedVersion(UInt32)
    }

    package static func checkSegmentHeader(_ bytes: [UInt8]) -> HeaderCheck {
        guard bytes.count >= segmentHeaderBytes else { return .incomplete }
        let h = Array(bytes.prefix(segmentHeaderBytes))
        if h.allSatisfy({ $0 == 0 }) { return .incomplete }
        guard Array(h[0..<8]) == magic else { return .invalid("bad magic (not a Confab WAL segment)") }
        return h.withUnsafeBytes { raw in
            let stored = UInt32.loadLE(raw, at: 20)
            let actual = CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<20])))
            guard stored == actual else { return .invalid("segment header checksum mismatch") }
            let version = UInt32.loadLE(raw, at: 8)
            guard readableVersions.contains(version) else { return .unsupportedVersion(version) }
            return .valid(segmentID: UInt64.loadLE(raw, at: 12), version: version)
        }
    }

    /// The 12-byte record header for a payload.
    package static func recordHeader(for payload: UnsafeRawBufferPointer) -> (UInt32, UInt32, UInt32) {
        let length = UInt32(payload.count)
        let dataCRC = CRC32C.mask(CRC32C.checksum(payload))
        return (headerCRC(length: length, dataCRC: dataCRC), length, dataCRC)
    }

    package static func headerCRC(length: UInt32, dataCRC: UInt32) -> UInt32 {
        var pair = (length.littleEndian, dataCRC.littleEndian)
        return withUnsafeBytes(of: &pair) { CRC32C.mask(CRC32C.checksum($0)) }
    }

    /// Appends one framed record to `out`.
    package static func appendRecord(_ payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let (hcrc, length, dcrc) = recordHeader(for: payload)
        appendRecord(payload, headerCRC: hcrc, length: length, dataCRC: dcrc, to: &out)
    }

    /// Appends a record whose checksums were computed earlier (outside the log's lock).
    package static func appendRecord(
        _ payload: UnsafeRawBufferPointer, headerCRC: UInt32, length: UInt32, dataCRC: UInt32, to out: inout [UInt8]
    ) {
        out.appendLE32(headerCRC)
        out.appendLE32(length)
        out.appendLE32(dataCRC)
        out.append(contentsOf: payload)
    }

    /// A sync marker saying the segment was fdatasynced through `syncedLength` bytes. The log
    /// appends one right after each fdatasync (it is synced with the next one), so recovery can
    /// tell damage inside the synced prefix (corruption) from an unsynced tail (any shape).
    package static func syncMarker(syncedLength: UInt64) -> [UInt8] {
        var payload: [UInt8] = []
        payload.appendLE64(syncedLength)
        let dataCRC = payload.withUnsafeBytes { CRC32C.mask(CRC32C.checksum($0)) }
        let length = syncMarkerFlag | UInt32(syncMarkerPayloadBytes)
        var out: [UInt8] = []
        out.reserveCapacity(syncMarkerBytes)
        out.appendLE32(headerCRC(length: length, dataCRC: dataCRC))
        out.appendLE32(length)
        out.appendLE32(dataCRC)
        out.append(contentsOf: payload)
        return out
    }

    /// A framed record in a fresh array (tests and tools).
    package static func framedRecord(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + recordHeaderBytes)
        payload.withUnsafeBytes { appendRecord($0, to: &out) }
        return out
    }
}
