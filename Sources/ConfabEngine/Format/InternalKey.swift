/// Identifies a table inside one engine. A schema layer above (keyspace.table names, CQL) maps
/// names to ids; the engine stores only the number.
public typealias TableID = UInt32

/// The engine's sort key: every memtable and SSTable entry is keyed by these bytes and compared
/// with memcmp.
///
///     table   u32 big-endian
///     token   i64 Murmur3 token of the partition key, sign bit flipped, big-endian
///     length  u16 big-endian length of the partition key
///     key     partition key bytes
///     clustering bytes (empty for the partition header entry)
///
/// Ordering partitions by token (as Cassandra does) means a token range of the ring is a contiguous
/// key range on disk: streaming, Merkle trees and repair read ranges, not scattered keys.
/// The partition header entry (empty clustering) sorts first in its partition and holds the
/// partition deletion and range tombstones.
package enum InternalKey {
    /// Bytes before the clustering key.
    package static func partitionPrefix(table: TableID, partitionKey: some Collection<UInt8>) -> [UInt8] {
        partitionPrefix(table: table, partitionKey: partitionKey, token: Murmur3.token(partitionKey))
    }

    package static func partitionPrefix(table: TableID, partitionKey: some Collection<UInt8>, token: Int64) -> [UInt8] {
        precondition(partitionKey.count <= Int(UInt16.max), "partition key longer than 65535 bytes")
        var out: [UInt8] = []
        out.reserveCapacity(14 + partitionKey.count)
        out.appendBE32(table)
        out.appendBE64(UInt64(bitPattern: token) ^ (1 << 63))
        out.appendBE16(UInt16(partitionKey.count))
        out.append(contentsOf: partitionKey)
        return out
    }

    /// Length of the partition prefix at the start of `key`, or nil if the key is malformed.
    package static func prefixLength(of key: UnsafeRawBufferPointer) -> Int? {
        guard key.count >= 14 else { return nil }
        let n = Int(UInt16.loadBE(key, at: 12))
        guard key.count >= 14 + n else { return nil }
        return 14 + n
    }

    package static func prefixLength(of key: [UInt8]) -> Int? {
        key.withUnsafeBytes { prefixLength(of: $0) }
    }

    /// The parts of a key, for dump tools and compaction.
    package struct Parts: Hashable, Sendable {
        package var table: TableID
        package var token: Int64
        package var partitionKey: [UInt8]
        package var clustering: [UInt8]
    }

    package static func decode(_ key: [UInt8]) -> Parts? {
        key.withUnsafeBytes { raw -> Parts? in
            guard let p = prefixLength(of: raw) else { return nil }
            let table = UInt32.loadBE(raw, at: 0)
            let token = Int64(bitPattern: UInt64.loadBE(raw, at: 4) ^ (1 << 63))
            return Parts(table: table, token: token, partitionKey: Array(key[14..<p]), clustering: Array(key[p...]))
        }
    }

    /// The smallest byte string greater than every string that starts with `prefix`, or nil when
    /// there is none (all 0xFF). Turns "has this prefix" into a half-open range.
    package static func prefixSuccessor(_ prefix: [UInt8]) -> [UInt8]? {
        var out = prefix
        while let last = out.last {
            if last < 0xFF {
                out[out.count - 1] = last + 1
                return out
            }
            out.removeLast()
        }
        return nil
    }
}

/// memcmp order on byte strings, shorter first on a common prefix.
@inlinable
package func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return Int(c) }
    }
    return a.count - b.count
}

@inlinable
package func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { ra in b.withUnsafeBytes { rb in compareBytes(ra, rb) } }
}

@inlinable
package func compareBytes(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Int {
    a.withUnsafeBytes { ra in b.withUnsafeBytes { rb in compareBytes(ra, rb) } }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
