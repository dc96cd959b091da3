import ArgumentParser
import ConfabEngine
import Foundation

/// `confab sstable verify|dump FILE`: offline inspection of one SSTable, like RocksDB's sst_dump.
/// Never crashes on a damaged file: every problem is printed with the file and offset, and the
/// exit status is non-zero.
struct SSTableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sstable",
        abstract: "Inspect SSTable files.",
        subcommands: [Verify.self, Dump.self]
    )

    /// Exit status for a file that fails a check (other failures, such as a missing file, use 1).
    static let corruptionExitCode: Int32 = 2

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every block of an SSTable (checksums, decompression, key order, values, statistics).",
            discussion: "Exits 0 when the file is intact, 2 when it is corrupt, 1 when it cannot be read.")

        @Argument(help: "The SSTable file to check.")
        var file: String

        @Flag(help: "Print the result as one JSON object.")
        var json = false

        func run() throws {
            let reader: SSTableReader
            let report: SSTableVerifyReport
            do {
                reader = try SSTableReader.open(
                    fileSystem: PosixFileSystem(), path: file, fileNumber: 0, blockCache: nil)
                report = try reader.verify(progress: nil)
            } catch let e as StorageError where e.code == .corruption || e.code == .unsupportedVersion {
                if json {
                    var object: [String: Any] = [
                        "ok": false, "file": file, "error": e.message, "code": e.code.description,
                    ]
                    if let offset = e.offset { object["offset"] = offset }
                    printJSON(object)
                } else {
                    print("file:    \(file)")
                    print("CORRUPT: \(e.message)")
                    print("         in \(e.path ?? file) at offset \(e.offset.map(String.init) ?? "unknown")")
                }
                throw ExitCode(SSTableCommand.corruptionExitCode)
            } catch {
                fail("confab sstable verify", error)
            }
            if json {
                var object = statisticsJSON(report.statistics)
                object["ok"] = true
                object["file"] = file
                object["formatVersion"] = Int(report.formatVersion)
                object["blocksChecked"] = report.blocksChecked
                object["compressedBlocks"] = report.compressedBlocks
                object["entriesChecked"] = report.entriesChecked
                object["dataBytes"] = report.dataBytes
                object["metaBytes"] = report.metaBytes
                object["bloomBytes"] = report.bloomBytes
                object["bloomProbes"] = report.bloomProbes
                printJSON(object)
                return
            }
            let s = report.statistics
            print("file:              \(file)")
            print("format version:    \(report.formatVersion)")
            print(
                "file bytes:        \(report.fileBytes) (data \(report.dataBytes), index/bloom/stats/footer \(report.metaBytes))"
            )
            print("blocks checked:    \(report.blocksChecked) (\(report.compressedBlocks) LZ4-compressed)")
            print("entries checked:   \(report.entriesChecked)")
            print("partitions:        \(s.partitionCount)")
            print("rows:              \(s.rowCount)")
            print("tombstones:        \(s.tombstoneCount)")
            if s.entryCount > 0 {
                print("timestamps:        \(s.minTimestamp) ... \(s.maxTimestamp)")
                print(
                    "clustering:        \(ClusteringKey.describe(s.minClustering)) ... \(ClusteringKey.describe(s.maxClustering))"
                )
                print("first key:         \(describeKey(s.minKey))")
                print("last key:          \(describeKey(s.maxKey))")
            }
            print("uncompressed:      \(s.uncompressedBytes) bytes")
            print("max deletion time: \(s.maxLocalDeletionTime == .min ? "none" : String(s.maxLocalDeletionTime))")
            print("bloom filter:      \(report.bloomBytes) bytes, \(report.bloomProbes) probes")
            print("OK")
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the entries of an SSTable in key order.",
            discussion:
                "Partition keys of 8 bytes print as bigints, clustering keys as their components. Stops with exit status 2 at the first damaged block."
        )

        @Argument(help: "The SSTable file to print.")
        var file: String

        @Flag(help: "Print one JSON object per entry, one per line, with full values.")
        var json = false

        @Option(help: "Print at most this many entries.")
        var limit: Int?

        @Option(help: "In the table view, truncate values longer than this many characters.")
        var width = 64

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
            if width < 8 { throw ValidationError("--width must be at least 8") }
        }

        func run() throws {
            var printed = 0
            do {
                let reader = try SSTableReader.open(
                    fileSystem: PosixFileSystem(), path: file, fileNumber: 0, blockCache: nil)
                try reader.forEachEntry(limit: limit) { key, value in
                    if json {
                        printJSON(entryJSON(key: key, value: value))
                    } else {
                        print(describeEntry(key: key, value: value, width: width))
                    }
                    printed += 1
                }
                if !json {
                    print("-- \(printed) of \(reader.statistics.entryCount) entries")
                }
            } catch let e as StorageError where e.code == .corruption || e.code == .unsupportedVersion {
                FileHandle.standardError.write(Data("confab sstable dump: \(e) (after \(printed) entries)\n".utf8))
                throw ExitCode(SSTableCommand.corruptionExitCode)
            } catch {
                fail("confab sstable dump", error)
            }
        }
    }
}

// MARK: - Formatting

private func fail(_ command: String, _ error: any Error) -> Never {
    FileHandle.standardError.write(Data("\(command): \(error)\n".utf8))
    Foundation.exit(1)
}

private func printJSON(_ object: [String: Any]) {
    guard
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    else {
        print("{\"error\":\"unencodable entry\"}")
        return
    }
    print(String(decoding: data, as: UTF8.self))
}

private func hex(_ bytes: some Collection<UInt8>) -> String {
    bytes.map { b in b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16) }.joined()
}

/// The bytes as text when they are valid UTF-8 without control characters, else nil.
private func printableText(_ bytes: [UInt8]) -> String? {
    guard let s = String(validating: bytes, as: UTF8.self) else { return nil }
    return s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F || $0 == "\t" }) ? s : nil
}

private func describePartitionKey(_ pk: [UInt8]) -> String {
    if pk.count == 8 {
        return String(Int64(bitPattern: pk.reduce(0) { $0 << 8 | UInt64($1) }))
    }
    if let text = printableText(pk) { return "\"\(text)\"" }
    return "0x" + hex(pk)
}

private func describeKey(_ key: [UInt8]) -> String {
    guard let parts = InternalKey.decode(key) else { return "0x" + hex(key) }
    return
        "table=\(parts.table) token=\(parts.token) pk=\(describePartitionKey(parts.partitionKey)) clustering=\(ClusteringKey.describe(parts.clustering))"
}

private func describeValue(_ bytes: [UInt8], width: Int) -> String {
    if let text = printableText(bytes) {
        let escaped = text.replacingOccurrences(of: "\"", with: "\\\"")
        if escaped.count <= width { return "\"\(escaped)\"" }
        return "\"\(escaped.prefix(width - 3))...\" (\(bytes.count) bytes)"
    }
    let shown = bytes.prefix(max(1, width / 2))
    return "0x" + hex(shown) + (shown.count < bytes.count ? "... (\(bytes.count) bytes)" : "")
}

private func describeDeletion(_ d: DeletionTime) -> String {
    "ts=\(d.timestamp) ldt=\(d.localDeletionTime)"
}

private func describeEntry(key: [UInt8], value: [UInt8], width: Int) -> String {
    var lines = [describeKey(key)]
    let decoded: EntryValue
    do {
        decoded = try EntryValue.decode(value)
    } catch {
        lines.append("  undecodable value (\(value.count) bytes): \(error)")
        return lines.joined(separator: "\n")
    }
    switch decoded {
    case .header(let h):
        if let d = h.deletion { lines.append("  partition deletion \(describeDeletion(d))") }
        for rt in h.rangeTombstones {
            let end = rt.end.map { ClusteringKey.describe($0) } ?? "end"
            lines.append(
                "  range tombstone [\(rt.start.isEmpty ? "start" : ClusteringKey.describe(rt.start)), \(end)) \(describeDeletion(rt.deletion))"
            )
        }
        if h.isEmpty { lines.append("  empty partition header") }
    case .row(let r):
        if let l = r.liveness {
            lines.append("  liveness ts=\(l.timestamp)" + (l.ttl > 0 ? " ttl=\(l.ttl) expires=\(l.expiresAt)" : ""))
        }
        if let d = r.deletion { lines.append("  row deletion \(describeDeletion(d))") }
        for c in r.cells {
            if let v = c.value {
                lines.append(
                    "  col \(c.column) ts=\(c.timestamp) \(describeValue(v, width: width))"
                        + (c.ttl > 0 ? " ttl=\(c.ttl) expires=\(c.localExpiry)" : ""))
            } else {
                lines.append("  col \(c.column) ts=\(c.timestamp) tombstone ldt=\(c.localExpiry)")
            }
        }
    }
    return lines.joined(separator: "\n")
}

private func deletionJSON(_ d: DeletionTime) -> [String: Any] {
    ["timestamp": d.timestamp, "localDeletionTime": d.localDeletionTime]
}

private func entryJSON(key: [UInt8], value: [UInt8]) -> [String: Any] {
    var object: [String: Any] = ["key": hex(key)]
    if let parts = InternalKey.decode(key) {
        object["table"] = Int(parts.table)
        object["token"] = parts.token
        object["partitionKey"] = hex(parts.partitionKey)
        if parts.partitionKey.count == 8 {
            object["partitionKeyBigint"] = Int64(bitPattern: parts.partitionKey.reduce(0) { $0 << 8 | UInt64($1) })
        }
        object["clustering"] = ClusteringKey.describe(parts.clustering)
        object["clusteringHex"] = hex(parts.clustering)
    }
    guard let decoded = try? EntryValue.decode(value) else {
        object["kind"] = "undecodable"
        object["valueHex"] = hex(value)
        return object
    }
    switch decoded {
    case .header(let h):
        object["kind"] = "header"
        if let d = h.deletion { object["deletion"] = deletionJSON(d) }
        object["rangeTombstones"] = h.rangeTombstones.map { rt -> [String: Any] in
            var o: [String: Any] = [
                "start": ClusteringKey.describe(rt.start), "startHex": hex(rt.start),
                "deletion": deletionJSON(rt.deletion),
            ]
            if let end = rt.end {
                o["end"] = ClusteringKey.describe(end)
                o["endHex"] = hex(end)
            }
            return o
        }
    case .row(let r):
        object["kind"] = "row"
        if let l = r.liveness {
            var o: [String: Any] = ["timestamp": l.timestamp]
            if l.ttl > 0 {
                o["ttl"] = Int(l.ttl)
                o["expiresAt"] = l.expiresAt
            }
            object["liveness"] = o
        }
        if let d = r.deletion { object["deletion"] = deletionJSON(d) }
        object["cells"] = r.cells.map { c -> [String: Any] in
            var o: [String: Any] = ["column": Int(c.column), "timestamp": c.timestamp]
            if let v = c.value {
                if let text = printableText(v) { o["value"] = text } else { o["valueHex"] = hex(v) }
                o["valueBytes"] = v.count
                if c.ttl > 0 {
                    o["ttl"] = Int(c.ttl)
                    o["expiresAt"] = c.localExpiry
                }
            } else {
                o["tombstone"] = true
                o["localDeletionTime"] = c.localExpiry
            }
            return o
        }
    }
    return object
}

private func statisticsJSON(_ s: SSTableStatistics) -> [String: Any] {
    [
        "entryCount": s.entryCount, "partitionCount": s.partitionCount, "rowCount": s.rowCount,
        "tombstoneCount": s.tombstoneCount, "minTimestamp": s.minTimestamp, "maxTimestamp": s.maxTimestamp,
        "minClustering": ClusteringKey.describe(s.minClustering),
        "maxClustering": ClusteringKey.describe(s.maxClustering),
        "minKey": hex(s.minKey), "maxKey": hex(s.maxKey), "uncompressedBytes": s.uncompressedBytes,
        "fileBytes": s.fileBytes, "maxLocalDeletionTime": s.maxLocalDeletionTime,
    ]
}
