/// A read of one partition's rows in a clustering range: the shape of a CQL
/// `SELECT ... WHERE pk = ? AND ck >= ? AND ck < ? ORDER BY ck [DESC] LIMIT n`.
public struct SliceQuery: Sendable, Hashable {
    public var table: TableID
    public var partitionKey: [UInt8]
    /// Lower bound on the clustering key (nil: from the start of the partition).
    public var lower: ClusteringBound?
    /// Upper bound on the clustering key (nil: to the end of the partition).
    public var upper: ClusteringBound?
    /// Newest first when clustering is by time.
    public var reversed: Bool
    /// At most this many rows.
    public var limit: Int
    /// Resume after this clustering key (from a previous `SliceResult.cursor`).
    public var cursor: [UInt8]?
    /// Stop after the live row that brings the page's row bytes (`SliceQuery.rowBytes`) to this
    /// many or more, with a cursor, as a Cassandra page in bytes: rows can be large (a chat message
    /// up to ~400 KB), so a page bounded only by its row count can outgrow a frame or a client's
    /// memory. A page holds at least one row, so it ends at most one row past the limit. nil: rows
    /// only.
    public var byteLimit: Int?

    public init(
        table: TableID, partitionKey: [UInt8], lower: ClusteringBound? = nil, upper: ClusteringBound? = nil,
        reversed: Bool = false, limit: Int = 100, cursor: [UInt8]? = nil, byteLimit: Int? = nil
    ) {
        self.table = table
        self.partitionKey = partitionKey
        self.lower = lower
        self.upper = upper
        self.reversed = reversed
        self.limit = limit
        self.cursor = cursor
        self.byteLimit = byteLimit
    }

    /// What a row counts against `byteLimit`: its clustering key and its encoded cells (values,
    /// timestamps and framing as stored), a measure every layer can take of the rows it holds.
    public static func rowBytes(clustering: Int, encoded: Int) -> Int { clustering + encoded }

    /// The half-open range [lo, hi) of raw clustering bytes this query covers, cursor applied.
    func clusteringRange() -> (lo: [UInt8], hi: [UInt8]?) {
        var lo: [UInt8] = [0x00]  // above the partition header entry (empty clustering)
        var hi: [UInt8]? = nil
        if let l = lower {
            let v = l.inclusive ? l.prefix : (InternalKey.prefixSuccessor(l.prefix) ?? [0xFF, 0xFF, 0xFF, 0xFF])
            if compareBytes(v, lo) > 0 { lo = v }
        }
        if let u = upper {
            hi = u.inclusive ? InternalKey.prefixSuccessor(u.prefix) : u.prefix
        }
        if let c = cursor {
            if reversed {
                if hi == nil || compareBytes(c, hi!) < 0 { hi = c }
            } else {
                var after = c
                after.append(0)  // the smallest key greater than c
                if compareBytes(after, lo) > 0 { lo = after }
            }
        }
        return (lo, hi)
    }
}

/// One side of a clustering range: a prefix of clustering components, inclusive or exclusive.
/// "timestamp < T" is `ClusteringBound(ClusteringKey([.int64(T)]), inclusive: false)` as an upper bound.
public struct ClusteringBound: Sendable, Hashable {
    public var prefix: [UInt8]
    public var inclusive: Bool
    public init(_ key: ClusteringKey, inclusive: Bool) {
        self.prefix = key.bytes
        self.inclusive = inclusive
    }
    public init(encoded: [UInt8], inclusive: Bool) {
        self.prefix = encoded
        self.inclusive = inclusive
    }
}

/// The rows of a slice, in query order, with only live cells.
public struct SliceResult: Sendable, Hashable {
    public var rows: [ResultRow]
    /// Pass back as `SliceQuery.cursor` to continue after the last row; nil when the slice is done.
    public var cursor: [UInt8]?
    /// Tombstones passed over while reading (Cassandra warns at 1,000).
    public var tombstonesScanned: Int

    public init(rows: [ResultRow], cursor: [UInt8]?, tombstonesScanned: Int = 0) {
        self.rows = rows
        self.cursor = cursor
        self.tombstonesScanned = tombstonesScanned
    }
}

/// What a read that visits rows in place (`StorageEngine.read(_:visit:)`) returns besides them.
public struct SliceSummary: Sendable, Hashable {
    /// Live rows handed to the visitor.
    public var rowCount: Int
    /// Resume after this clustering key; nil when the slice is known to be done.
    public var cursor: [UInt8]?
    /// Dead rows the read stepped over.
    public var tombstonesScanned: Int
}

public struct ResultRow: Sendable, Hashable {
    public var clustering: [UInt8]
    /// Live cells only, sorted by column.
    public var cells: [Cell]

    public init(clustering: [UInt8], cells: [Cell]) {
        self.clustering = clustering
        self.cells = cells
    }

    public func value(_ column: UInt32) -> [UInt8]? {
        cells.first { $0.column == column }?.value
    }
}
