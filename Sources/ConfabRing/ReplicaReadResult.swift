import ConfabEngine

/// What a replica returns for a full-data read of a slice: the raw row fragments with their
/// timestamps and tombstones (not just live cells), plus the partition header (partition deletion
/// and range tombstones), so a coordinator can reconcile replicas by timestamp and compute repairs.
///
/// The engine's `SliceResult` holds live cells only, which cannot be reconciled; the shell reads
/// this from the engine's raw merge of the slice.
public struct ReplicaReadResult: Hashable, Sendable {
    public var header: PartitionHeader
    /// Sorted by clustering bytes, one entry per clustering key.
    public var rows: [Mutation.Row]
    /// Set when the replica stopped because it reached the query's limit of live rows (by its
    /// own data): the last clustering key it looked at. It has not read past this key, so what a
    /// coordinator merges is only trustworthy up to here — a row the replica holds further on
    /// (or a tombstone that hides another replica's row) is not in `rows`. Nil: the replica read
    /// the whole slice.
    public var cursor: [UInt8]?

    public init(header: PartitionHeader = PartitionHeader(), rows: [Mutation.Row] = [], cursor: [UInt8]? = nil) {
        self.header = header
        self.rows = rows
        self.cursor = cursor
    }

    /// The canonical form two replicas holding the same data agree on byte for byte: rows sorted
    /// and merged per clustering key, data the header deletes removed, empty rows dropped.
    public func normalized() -> ReplicaReadResult {
        let header = PartitionHeader.merge(self.header, PartitionHeader())
        // Already canonical — no header to apply, one non-empty row per key, in order (a replica's
        // usual answer): the rows as they are, or reversed for a newest-first slice. The general
        // path below would copy every row to the same result.
        if header.isEmpty, rows.allSatisfy({ !Self.isEmpty($0.fragment) }) {
            if Self.inOrder(rows, descending: false, strictly: true) {
                return ReplicaReadResult(header: header, rows: rows, cursor: cursor)
            }
            if Self.inOrder(rows, descending: true) {
                return ReplicaReadResult(header: header, rows: rows.reversed(), cursor: cursor)
            }
        }
        // Sorted, then equal keys folded together: no per-row hashing of clustering bytes (it was
        // a dictionary keyed by [UInt8], hashed byte by byte, on every read). A replica's answer is
        // usually sorted already. The fold order of equal keys does not matter: merging is
        // commutative.
        var sorted = rows
        // A newest-first slice comes strictly descending: reversing it is the sort.
        if Self.inOrder(sorted, descending: true) {
            sorted.reverse()
        } else if !Self.inOrder(sorted, descending: false) {
            sorted.sort { compareBytes($0.clustering, $1.clustering) < 0 }
        }
        var out: [Mutation.Row] = []
        out.reserveCapacity(sorted.count)
        var i = 0
        while i < sorted.count {
            let ck = sorted[i].clustering
            var fragment = sorted[i].fragment
            var j = i + 1
            while j < sorted.count, sorted[j].clustering == ck {
                fragment = RowFragment.merge(fragment, sorted[j].fragment)
                j += 1
            }
            i = j
            if let d = header.deletion(covering: ck) {
                fragment.applyDeletion(d)
                if let own = fragment.deletion, own <= d { fragment.deletion = nil }
            }
            if Self.isEmpty(fragment) { continue }
            out.append(Mutation.Row(clustering: ck, fragment: fragment))
        }
        return ReplicaReadResult(header: header, rows: out, cursor: cursor)
    }

    /// Whether each row's clustering key is above the next one's (`descending`, a reversed
    /// slice), or at or below it (equal neighbours are folded) — below it, when `strictly`.
    private static func inOrder(_ rows: [Mutation.Row], descending: Bool, strictly: Bool = false) -> Bool {
        var k = 1
        while k < rows.count {
            let c = compareBytes(rows[k - 1].clustering, rows[k].clustering)
            if descending ? c <= 0 : (strictly ? c >= 0 : c > 0) { return false }
            k += 1
        }
        return true
    }

    /// A row with nothing in it: normalizing drops it.
    private static func isEmpty(_ fragment: RowFragment) -> Bool {
        fragment.liveness == nil && fragment.deletion == nil && fragment.cells.isEmpty
    }

    /// A 128-bit digest of the normalized result, timestamps and tombstones included (Cassandra's
    /// digest reads hash the same thing). Equal digests mean the replicas need no repair for this
    /// slice. The cursor is not hashed: replicas with equal rows count the same live rows, so they
    /// stop at the same key.
    public func digest() -> ReadDigest {
        let bytes = asMutation(table: 0, partitionKey: []).encoded()
        let (a, b) = bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0x636f_6e66_6162) }
        return ReadDigest(high: a, low: b)
    }

    /// The result as a mutation (normalized), e.g. to write a repair.
    public func asMutation(table: TableID, partitionKey: [UInt8]) -> Mutation {
        let n = normalized()
        return Mutation(table: table, partitionKey: partitionKey, header: n.header, rows: n.rows)
    }

    /// True when there is nothing to write.
    public var isEmpty: Bool { header.isEmpty && rows.isEmpty }
}

/// A digest of a replica's answer to a read (see `ReplicaReadResult.digest()`).
public struct ReadDigest: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public var description: String {
        String(high, radix: 16).leftPadded(16) + String(low, radix: 16).leftPadded(16)
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
