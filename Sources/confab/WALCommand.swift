import ArgumentParser
import ConfabEngine
import Foundation

/// `confab wal dump FILE`: inspect write-ahead log segments (format in docs/wal_format.md).
struct WALCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Inspect write-ahead log segments.",
        subcommands: [WALDumpCommand.self]
    )
}

/// Prints every record of one segment with its checksum status and decoded mutation, then a
/// summary. Reads only; never modifies the file (replay, not this tool, truncates torn tails).
struct WALDumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the records of a WAL segment file and check their checksums.",
        discussion: """
            Exit status: 0 when every record is intact or the file ends in a torn tail (a crash \
            mid-append, which replay truncates); 1 on corruption (a bad record followed by intact \
            ones, a bad record in a segment that is not the newest in its directory, a damaged \
            segment header), an undecodable mutation, or a file that cannot be read.
            """
    )

    @Argument(help: "Path of the segment file (wal-<id>.log).")
    var file: String

    @Flag(
        name: .long, help: "Print one JSON object per line (segment, record, bad_record, summary) instead of a table.")
    var json = false

    @Flag(name: .long, help: "Also print each record's raw payload bytes as hex.")
    var payloads = false

    /// Longest cell value shown in the table view before it is cut with "…".
    static let valuePreviewCharacters = 48

    func run() throws {
        let fs = PosixFileSystem()
        let expectedID = WALRecordFormat.segmentID(fromFileName: String(file.split(separator: "/").last ?? ""))
        let reader: WALSegmentReader
        do {
            reader = try WALSegmentReader(path: file, fileSystem: fs, expectedSegmentID: expectedID)
        } catch {
            emitError("cannot read \(file): \(error)")
            throw ExitCode(1)
        }
        defer { reader.close() }

        let newer = newerSegmentExists(than: expectedID)
        if json {
            emit(
                JSONSegment(
                    type: "segment", path: file, segmentID: reader.segmentID, fileBytes: reader.fileSize,
                    newerSegmentInDirectory: newer))
        } else {
            print("segment \(file)")
            print(
                "  id \(reader.segmentID.map(String.init) ?? "?"), format version \(reader.segmentID == nil ? "?" : String(WALRecordFormat.formatVersion)), \(reader.fileSize) bytes"
            )
            print("")
        }

        var records = 0
        var recordBytes = 0
        var undecodable = 0
        while true {
            let record: WALRecord?
            do {
                record = try reader.next()
            } catch {
                emitError("read failed at offset \(reader.position): \(error)")
                throw ExitCode(1)
            }
            guard let record else { break }
            records += 1
            recordBytes += record.framedBytes
            let mutation: Mutation?
            var decodeError: String?
            do { mutation = try Mutation.decode(record.payload) } catch {
                mutation = nil
                decodeError = "\(error)"
                undecodable += 1
            }
            if json {
                emit(
                    JSONRecord(
                        type: "record", offset: record.offset, length: record.payload.count, crc: "ok",
                        mutation: mutation.map(JSONMutation.init), decodeError: decodeError,
                        payloadHex: payloads ? hex(record.payload) : nil))
            } else {
                printRecord(record, mutation: mutation, decodeError: decodeError)
            }
        }

        let bad = reader.badRecord
        let torn = bad.map { $0.looksLikeTornTail && !newer } ?? false
        let verdict: String
        if let bad {
            verdict = torn ? "torn tail" : "corruption"
            let dropped = reader.fileSize - bad.offset
            if json {
                emit(
                    JSONBadRecord(
                        type: "bad_record", offset: bad.offset, length: bad.length, crc: "bad", verdict: verdict,
                        reason: bad.reason, validRecordFollowsAt: bad.validRecordFollowsAt, bytesAfter: dropped))
            } else {
                print(
                    String(bad.offset).padding(12) + (bad.length.map(String.init) ?? "?").padding(10) + "BAD  "
                        + bad.reason)
            }
        } else {
            verdict = "ok"
        }

        if json {
            emit(
                JSONSummary(
                    type: "summary", records: records, recordBytes: recordBytes, fileBytes: reader.fileSize,
                    undecodable: undecodable, status: verdict,
                    firstBadOffset: bad?.offset, firstBadReason: bad?.reason))
        } else {
            print("")
            print("summary: \(records) records, \(recordBytes) bytes of records, file \(reader.fileSize) bytes")
            if undecodable > 0 { print("  \(undecodable) record(s) with intact checksums do not decode as mutations") }
            if let bad {
                let dropped = reader.fileSize - bad.offset
                if torn {
                    print(
                        "  torn tail at offset \(bad.offset): \(bad.reason); \(dropped) bytes after the last intact record (replay truncates them when this is the newest segment)"
                    )
                } else {
                    var why = ""
                    if let follows = bad.validRecordFollowsAt {
                        why = "; an intact record follows at offset \(follows)"
                    } else if newer && bad.looksLikeTornTail {
                        why = "; a newer segment exists in the directory, so this is not a torn tail"
                    }
                    print("  CORRUPTION: first bad record at offset \(bad.offset): \(bad.reason)\(why)")
                }
            } else {
                print("  all records intact")
            }
            if let from = reader.preallocatedFrom {
                print(
                    "  offsets \(from)…\(reader.fileSize) are unused preallocated space (zeros, past everything synced; the log was not closed cleanly)"
                )
            }
        }
        if (bad != nil && !torn) || undecodable > 0 { throw ExitCode(1) }
    }

    /// True when the directory of `file` holds a segment with a higher id: damage at the end of
    /// this one is then corruption, not a torn tail (only the newest segment can be torn).
    private func newerSegmentExists(than id: UInt64?) -> Bool {
        guard let id else { return false }
        let dir: String
        if let slash = file.lastIndex(of: "/") {
            dir = slash == file.startIndex ? "/" : String(file[..<slash])
        } else {
            dir = "."
        }
        let names = (try? PosixFileSystem().listDirectory(dir)) ?? []
        return names.contains { (WALRecordFormat.segmentID(fromFileName: $0) ?? 0) > id }
    }

    // MARK: - Table view

    private func printRecord(_ record: WALRecord, mutation: Mutation?, decodeError: String?) {
        print(String(record.offset).padding(12) + String(record.payload.count).padding(10) + "ok   ", terminator: "")
        if let m = mutation {
            print("table \(m.table) partition \(describePartitionKey(m.partitionKey))")
            if let d = m.header.deletion {
                print(indent + "partition deleted at \(d.timestamp) (local \(d.localDeletionTime))")
            }
            for rt in m.header.rangeTombstones {
                let end = rt.end.map { ClusteringKey.describe($0) } ?? "end"
                print(
                    indent
                        + "range tombstone [\(ClusteringKey.describe(rt.start)) .. \(end)) at \(rt.deletion.timestamp)")
            }
            for row in m.rows {
                var line = indent + "row \(ClusteringKey.describe(row.clustering))"
                if let l = row.fragment.liveness {
                    line += " live@\(l.timestamp)" + (l.ttl > 0 ? " ttl \(l.ttl)s" : "")
                }
                if let d = row.fragment.deletion { line += " deleted@\(d.timestamp)" }
                print(line)
                for c in row.fragment.cells {
                    var cell = indent + "  col \(c.column) @\(c.timestamp) "
                    if let v = c.value { cell += preview(v) } else { cell += "(tombstone)" }
                    if c.ttl > 0 { cell += " ttl \(c.ttl)s expires \(c.localExpiry)" }
                    print(cell)
                }
            }
        } else {
            print("(payload does not decode as a mutation: \(decodeError ?? "?"))")
        }
        if payloads { print(indent + "payload " + hex(record.payload)) }
    }

    private var indent: String { String(repeating: " ", count: 27) }

    private func preview(_ value: [UInt8]) -> String {
        guard let s = String(validating: value, as: UTF8.self) else {
            let shown = hex(Array(value.prefix(Self.valuePreviewCharacters / 2)))
            return shown + (value.count > Self.valuePreviewCharacters / 2 ? "… (\(value.count) bytes)" : "")
        }
        let escaped = s.unicodeScalars.map {
            $0.properties.isWhitespace && $0 != " " || $0.value < 0x20 ? "·" : String($0)
        }.joined()
        if escaped.count <= Self.valuePreviewCharacters { return "\"\(escaped)\"" }
        return "\"\(escaped.prefix(Self.valuePreviewCharacters))…\" (\(value.count) bytes)"
    }

    // MARK: - Output

    private func emit(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value), let line = String(data: data, encoding: .utf8) else { return }
        print(line)
    }

    private func emitError(_ message: String) {
        if json {
            emit(JSONErrorLine(type: "error", message: message))
        } else {
            FileHandle.standardError.write(Data(("confab wal dump: " + message + "\n").utf8))
        }
    }
}

/// A partition key as a bigint when it is 8 bytes (Cassandra's big-endian encoding), else hex.
private func describePartitionKey(_ key: [UInt8]) -> String {
    if key.count == 8 {
        let v = key.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return "\(Int64(bitPattern: v)) (bigint)"
    }
    return "0x" + hex(key)
}

private func hex(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var s = ""
    s.reserveCapacity(bytes.count * 2)
    for b in bytes {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 15)])
    }
    return s
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

// MARK: - JSON lines

private struct JSONSegment: Encodable {
    var type: String
    var path: String
    var segmentID: UInt64?
    var fileBytes: Int
    var newerSegmentInDirectory: Bool
}

private struct JSONRecord: Encodable {
    var type: String
    var offset: Int
    var length: Int
    var crc: String
    var mutation: JSONMutation?
    var decodeError: String?
    var payloadHex: String?
}

private struct JSONBadRecord: Encodable {
    var type: String
    var offset: Int
    var length: Int?
    var crc: String
    var verdict: String
    var reason: String
    var validRecordFollowsAt: Int?
    var bytesAfter: Int
}

private struct JSONSummary: Encodable {
    var type: String
    var records: Int
    var recordBytes: Int
    var fileBytes: Int
    var undecodable: Int
    /// "ok", "torn tail" or "corruption".
    var status: String
    var firstBadOffset: Int?
    var firstBadReason: String?
}

private struct JSONErrorLine: Encodable {
    var type: String
    var message: String
}

private struct JSONDeletion: Encodable {
    var timestamp: Int64
    var localDeletionTime: Int64
    init(_ d: DeletionTime) {
        timestamp = d.timestamp
        localDeletionTime = d.localDeletionTime
    }
}

private struct JSONMutation: Encodable {
    struct RangeTombstoneLine: Encodable {
        var start: String
        var end: String?
        var deletion: JSONDeletion
    }
    struct Row: Encodable {
        var clustering: String
        var clusteringHex: String
        var livenessTimestamp: Int64?
        var livenessTTL: Int32?
        var deletion: JSONDeletion?
        var cells: [CellLine]
    }
    struct CellLine: Encodable {
        var column: UInt32
        var timestamp: Int64
        var tombstone: Bool
        /// The value as UTF-8 when it is valid UTF-8 (not truncated).
        var value: String?
        var valueHex: String?
        var ttl: Int32?
        var localExpiry: Int64?
    }

    var table: UInt32
    var partitionKeyHex: String
    var partitionKeyBigint: Int64?
    var partitionDeletion: JSONDeletion?
    var rangeTombstones: [RangeTombstoneLine]
    var rows: [Row]

    init(_ m: Mutation) {
        table = m.table
        partitionKeyHex = hex(m.partitionKey)
        partitionKeyBigint =
            m.partitionKey.count == 8
            ? Int64(bitPattern: m.partitionKey.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) : nil
        partitionDeletion = m.header.deletion.map(JSONDeletion.init)
        rangeTombstones = m.header.rangeTombstones.map {
            RangeTombstoneLine(
                start: ClusteringKey.describe($0.start), end: $0.end.map { ClusteringKey.describe($0) },
                deletion: JSONDeletion($0.deletion))
        }
        rows = m.rows.map { row in
            Row(
                clustering: ClusteringKey.describe(row.clustering), clusteringHex: hex(row.clustering),
                livenessTimestamp: row.fragment.liveness?.timestamp,
                livenessTTL: row.fragment.liveness.flatMap { $0.ttl > 0 ? $0.ttl : nil },
                deletion: row.fragment.deletion.map(JSONDeletion.init),
                cells: row.fragment.cells.map { c in
                    let text = c.value.flatMap { String(validating: $0, as: UTF8.self) }
                    return CellLine(
                        column: c.column, timestamp: c.timestamp, tombstone: c.isTombstone,
                        value: text, valueHex: c.value.flatMap { text == nil ? hex($0) : nil },
                        ttl: c.ttl > 0 ? c.ttl : nil,
                        localExpiry: c.isTombstone || c.ttl > 0 ? c.localExpiry : nil)
                })
        }
    }
}
