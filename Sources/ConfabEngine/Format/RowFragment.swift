/// One row's data as one source (a memtable, an SSTable, a WAL record) knows it. Fragments of the
/// same row from several sources merge by timestamp, in any order, to the same result — which is
/// why the engine needs no sequence numbers: reconciliation is commutative, as in Cassandra.
public struct RowFragment: Hashable, Sendable {
    public var liveness: LivenessInfo?
    public var deletion: DeletionTime?
    /// Sorted by column id, at most one cell per column.
    public var cells: [Cell]

    public init(liveness: LivenessInfo? = nil, deletion: DeletionTime? = nil, cells: [Cell] = []) {
        self.liveness = liveness
        self.deletion = deletion
        self.cells = cells.sorted { $0.column < $1.column }
    }

    /// Merges two fragments of the same row and drops what the merged row deletion shadows.
    public static func merge(_ a: RowFragment, _ b: RowFragment) -> RowFragment {
        var out = RowFragment()
        switch (a.deletion, b.deletion) {
        case (let x?, let y?): out.deletion = max(x, y)
        case (let x, let y): out.deletion = x ?? y
        }
        switch (a.liveness, b.liveness) {
        case (let x?, let y?): out.liveness = LivenessInfo.reconcile(x, y)
        case (let x, let y): out.liveness = x ?? y
        }
        var i = 0
        var j = 0
        out.cells.reserveCapacity(max(a.cells.count, b.cells.count))
        while i < a.cells.count || j < b.cells.count {
            if j >= b.cells.count || (i < a.cells.count && a.cells[i].column < b.cells[j].column) {
                out.cells.append(a.cells[i])
                i += 1
            } else if i >= a.cells.count || b.cells[j].column < a.cells[i].column {
                out.cells.append(b.cells[j])
                j += 1
            } else {
                out.cells.append(Cell.reconcile(a.cells[i], b.cells[j]))
                i += 1
                j += 1
            }
        }
        if let d = out.deletion { out.applyDeletion(d) }
        return out
    }

    /// Removes data shadowed by `deletion` (a row, range or partition deletion).
    public mutating func applyDeletion(_ d: DeletionTime) {
        if let l = liveness, d.shadows(l.timestamp) { liveness = nil }
        cells.removeAll { d.shadows($0.timestamp) }
    }

    /// True when the row has something visible at `now`.
    public func isLive(now: Int64) -> Bool {
        if let l = liveness, l.isLive(now: now) { return true }
        return cells.contains { $0.isLive(now: now) }
    }

    /// Count of tombstones in the fragment (row deletion, cell tombstones, expired cells).
    func tombstoneCount(now: Int64) -> Int {
        (deletion == nil ? 0 : 1) + cells.reduce(0) { $0 + ($1.isTombstone || !$1.isLive(now: now) ? 1 : 0) }
    }

    /// The largest timestamp anywhere in the fragment (for SSTable statistics).
    var maxTimestamp: Int64 {
        var m = Int64.min
        if let l = liveness { m = max(m, l.timestamp) }
        if let d = deletion { m = max(m, d.timestamp) }
        for c in cells { m = max(m, c.timestamp) }
        return m
    }

    var minTimestamp: Int64 {
        var m = Int64.max
        if let l = liveness { m = min(m, l.timestamp) }
        if let d = deletion { m = min(m, d.timestamp) }
        for c in cells { m = min(m, c.timestamp) }
        return m
    }
}

/// A deletion of every row whose clustering key is in [start, end). `end` nil means to the end of
/// the partition; an empty `start` means from its beginning.
public struct RangeTombstone: Hashable, Sendable {
    public var start: [UInt8]
    public var end: [UInt8]?
    public var deletion: DeletionTime

    public init(start: [UInt8], end: [UInt8]?, deletion: DeletionTime) {
        self.start = start
        self.end = end
        self.deletion = deletion
    }

    /// Orders by start, then end (open end last), then deletion.
    static func precedes(_ a: RangeTombstone, _ b: RangeTombstone) -> Bool {
        let s = compareBytes(a.start, b.start)
        if s != 0 { return s < 0 }
        switch (a.end, b.end) {
        case (let x?, let y?):
            let e = compareBytes(x, y)
            if e != 0 { return e < 0 }
        case (nil, _?): return false
        case (_?, nil): return true
        case (nil, nil): break
        }
        return a.deletion < b.deletion
    }

    @inlinable
    public func covers(_ clustering: [UInt8]) -> Bool {
        clustering.withUnsafeBytes { covers($0) }
    }

    public func covers(_ clustering: UnsafeRawBufferPointer) -> Bool {
        guard start.withUnsafeBytes({ compareBytes(clustering, $0) }) >= 0 else { return false }
        if let end { return end.withUnsafeBytes { compareBytes(clustering, $0) } < 0 }
        return true
    }
}

/// Partition-level state, stored as the entry with an empty clustering key that sorts first in the
/// partition: the partition deletion and the range tombstones.
public struct PartitionHeader: Hashable, Sendable {
    public var deletion: DeletionTime?
    public var rangeTombstones: [RangeTombstone]

    public init(deletion: DeletionTime? = nil, rangeTombstones: [RangeTombstone] = []) {
        self.deletion = deletion
        self.rangeTombstones = rangeTombstones
    }

    public var isEmpty: Bool { deletion == nil && rangeTombstones.isEmpty }

    public static func merge(_ a: PartitionHeader, _ b: PartitionHeader) -> PartitionHeader {
        var out = PartitionHeader()
        switch (a.deletion, b.deletion) {
        case (let x?, let y?): out.deletion = max(x, y)
        case (let x, let y): out.deletion = x ?? y
        }
        var seen = Set<RangeTombstone>()
        for rt in a.rangeTombstones + b.rangeTombstones where seen.insert(rt).inserted {
            // A range tombstone the partition deletion shadows carries no information.
            if let d = out.deletion, d.timestamp >= rt.deletion.timestamp { continue }
            out.rangeTombstones.append(rt)
        }
        // A total order (start, then end, then deletion), so the list is the same bytes whatever
        // order the headers were merged in.
        out.rangeTombstones.sort(by: RangeTombstone.precedes)
        return out
    }

    /// The newest deletion that applies to a row at `clustering`.
    public func deletion(covering clustering: [UInt8]) -> DeletionTime? {
        clustering.withUnsafeBytes { deletion(covering: $0) }
    }

    /// As `deletion(covering:)`, for a key read in place.
    public func deletion(covering clustering: UnsafeRawBufferPointer) -> DeletionTime? {
        var best = deletion
        for rt in rangeTombstones where rt.covers(clustering) {
            if best == nil || best! < rt.deletion { best = rt.deletion }
        }
        return best
    }
}

/// What a write changes in one partition: the unit the WAL logs and the memtable applies
/// atomically (all of it or none of it is visible after a crash).
public struct Mutation: Hashable, Sendable {
    public var table: TableID
    public var partitionKey: [UInt8]
    public var header: PartitionHeader
    public var rows: [Row]

    public struct Row: Hashable, Sendable {
        /// Encoded clustering key (see `ClusteringKey`); must not be empty.
        public var clustering: [UInt8]
        public var fragment: RowFragment
        public init(clustering: [UInt8], fragment: RowFragment) {
            self.clustering = clustering
            self.fragment = fragment
        }
    }

    public init(table: TableID, partitionKey: [UInt8], header: PartitionHeader = PartitionHeader(), rows: [Row] = []) {
        self.table = table
        self.partitionKey = partitionKey
        self.header = header
        self.rows = rows
    }
}
