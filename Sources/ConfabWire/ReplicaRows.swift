import ConfabEngine

/// A replica's rows for a slice with full cell data: row liveness, row and cell timestamps, TTLs,
/// tombstones and the partition header (partition deletion, range tombstones) — what a coordinator
/// needs to reconcile replicas by timestamp and to compute read repairs. Rows are in query order.
///
/// On the wire the partition part is exactly the engine's mutation encoding
/// (docs/entry_format.md), so a repair can be written back without translation.
public struct ReplicaRows: Hashable, Sendable {
    public var table: TableID
    public var partitionKey: [UInt8]
    public var header: PartitionHeader
    public var rows: [Mutation.Row]
    /// Pass back as the request's cursor to continue after the last row; nil when the slice is done.
    public var cursor: [UInt8]?
    /// Tombstones passed over while reading.
    public var tombstonesScanned: UInt32

    public init(
        table: TableID, partitionKey: [UInt8], header: PartitionHeader = PartitionHeader(),
        rows: [Mutation.Row] = [], cursor: [UInt8]? = nil, tombstonesScanned: UInt32 = 0
    ) {
        self.table = table
        self.partitionKey = partitionKey
        self.header = header
        self.rows = rows
        self.cursor = cursor
        self.tombstonesScanned = tombstonesScanned
    }

    /// The rows and header as a mutation (e.g. to write a repair).
    public var asMutation: Mutation {
        Mutation(table: table, partitionKey: partitionKey, header: header, rows: rows)
    }

    /// A 128-bit digest (MurmurHash3 x64 128) of the partition bytes: header, rows, timestamps and
    /// tombstones. Equal data in equal order gives equal digests.
    public func digest() -> ReadResponse.Digest {
        let bytes = asMutation.encoded()
        let (h, l) = bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0) }
        return ReadResponse.Digest(high: h, low: l)
    }
}
