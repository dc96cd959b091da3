/// What an SSTable holds, computed while it is written and stored in its statistics block, so the
/// engine can plan compaction (time windows by timestamp, tombstone purges) without reading data.
///
/// "None" values for an empty table: timestamps `Int64.max` / `Int64.min` (min / max), empty keys,
/// and `maxLocalDeletionTime == Int64.min`.
package struct SSTableStatistics: Sendable, Hashable, Codable {
    /// Entries (rows and partition headers).
    package var entryCount = 0
    package var partitionCount = 0
    /// Entries with a non-empty clustering key.
    package var rowCount = 0
    /// Row deletions, cell tombstones, partition deletions and range tombstones. Expiring cells are
    /// not counted: whether they have expired depends on when the table is read.
    package var tombstoneCount = 0
    /// Smallest and largest write timestamp of any liveness, cell, or deletion (microseconds).
    package var minTimestamp: Int64 = .max
    package var maxTimestamp: Int64 = .min
    /// Smallest and largest clustering key (bytes) among rows; headers are not counted.
    package var minClustering: [UInt8] = []
    package var maxClustering: [UInt8] = []
    /// First and last internal key.
    package var minKey: [UInt8] = []
    package var maxKey: [UInt8] = []
    /// Sum of key and value lengths: the logical data size, before prefix compression and LZ4.
    package var uncompressedBytes = 0
    /// Size of the whole file (not stored in the statistics block; the reader fills it in).
    package var fileBytes = 0
    /// Latest local deletion time (seconds) of any tombstone or expiring value (cells and rows with
    /// a TTL become tombstones when they expire). Once this plus the grace period has passed, no
    /// tombstone in the table is still needed. `Int64.min` when there is none.
    package var maxLocalDeletionTime: Int64 = .min

    package init() {}

    static let encodingVersion: UInt8 = 1

    /// Encoded contents of the statistics block: u8 version (1), then varints (`s` = zig-zag
    /// signed, `b` = varint length + bytes) in this order: entryCount, partitionCount, rowCount,
    /// tombstoneCount, s minTimestamp, s maxTimestamp, b minClustering, b maxClustering, b minKey,
    /// b maxKey, uncompressedBytes, s maxLocalDeletionTime.
    func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.encodingVersion]
        out.appendVarint(entryCount)
        out.appendVarint(partitionCount)
        out.appendVarint(rowCount)
        out.appendVarint(tombstoneCount)
        out.appendSignedVarint(minTimestamp)
        out.appendSignedVarint(maxTimestamp)
        out.appendLengthPrefixed(minClustering)
        out.appendLengthPrefixed(maxClustering)
        out.appendLengthPrefixed(minKey)
        out.appendLengthPrefixed(maxKey)
        out.appendVarint(uncompressedBytes)
        out.appendSignedVarint(maxLocalDeletionTime)
        return out
    }

    init(decoding bytes: [UInt8], path: String, offset: Int) throws {
        var r = ByteReader(bytes, context: "statistics block")
        do {
            let version = try r.readByte()
            guard version == Self.encodingVersion else { throw r.fail("unknown statistics version \(version)") }
            entryCount = try r.readVarintInt(max: Int.max)
            partitionCount = try r.readVarintInt(max: Int.max)
            rowCount = try r.readVarintInt(max: Int.max)
            tombstoneCount = try r.readVarintInt(max: Int.max)
            minTimestamp = try r.readSignedVarint()
            maxTimestamp = try r.readSignedVarint()
            minClustering = Array(try r.readLengthPrefixed())
            maxClustering = Array(try r.readLengthPrefixed())
            minKey = Array(try r.readLengthPrefixed())
            maxKey = Array(try r.readLengthPrefixed())
            uncompressedBytes = try r.readVarintInt(max: Int.max)
            maxLocalDeletionTime = try r.readSignedVarint()
            guard r.isAtEnd else { throw r.fail("\(r.remaining) trailing bytes") }
        } catch let e as StorageError where e.path == nil {
            throw StorageError.corruption(e.message, path: path, offset: offset)
        }
    }
}
