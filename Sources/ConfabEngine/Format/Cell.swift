/// When and by what something was deleted: `timestamp` (microseconds, the write time that decides
/// what it shadows) and `localDeletionTime` (seconds, when the deletion happened on this node, which
/// starts the grace period before the tombstone may be purged).
public struct DeletionTime: Hashable, Sendable, Comparable {
    public var timestamp: Int64
    public var localDeletionTime: Int64

    public init(timestamp: Int64, localDeletionTime: Int64) {
        self.timestamp = timestamp
        self.localDeletionTime = localDeletionTime
    }

    /// Shadows data written at or before its timestamp (Cassandra's rule).
    @inlinable
    public func shadows(_ writeTimestamp: Int64) -> Bool { writeTimestamp <= timestamp }

    public static func < (a: DeletionTime, b: DeletionTime) -> Bool {
        (a.timestamp, a.localDeletionTime) < (b.timestamp, b.localDeletionTime)
    }
}

/// One column value of a row with its write timestamp; the newest timestamp wins.
public struct Cell: Hashable, Sendable {
    /// Column id within the table (the schema maps names to ids).
    public var column: UInt32
    /// Write time in microseconds since the epoch.
    public var timestamp: Int64
    /// nil for a cell tombstone.
    public var value: [UInt8]?
    /// Time to live in seconds, 0 for none.
    public var ttl: Int32
    /// For an expiring cell, when it expires (seconds); for a tombstone, its local deletion time.
    public var localExpiry: Int64

    public init(column: UInt32, timestamp: Int64, value: [UInt8], ttl: Int32 = 0, expiresAt: Int64 = 0) {
        self.column = column
        self.timestamp = timestamp
        self.value = value
        self.ttl = ttl
        self.localExpiry = ttl > 0 ? expiresAt : 0
    }

    public static func tombstone(column: UInt32, timestamp: Int64, localDeletionTime: Int64) -> Cell {
        var c = Cell(column: column, timestamp: timestamp, value: [])
        c.value = nil
        c.localExpiry = localDeletionTime
        return c
    }

    public var isTombstone: Bool { value == nil }
    public var isExpiring: Bool { value != nil && ttl > 0 }

    /// Live at `now` (seconds): not a tombstone and not expired.
    @inlinable
    public func isLive(now: Int64) -> Bool {
        guard value != nil else { return false }
        return ttl == 0 || localExpiry > now
    }

    /// Reconciles two versions of the same cell: higher timestamp wins. On a tie, a cell that has
    /// an end (a tombstone, or an expiring cell) beats a permanent one; between two with an end, the
    /// later end (deletion time or expiry) wins, then the tombstone; then the greater value, then
    /// the longer TTL. Every field decides, so this is a total order and the winner never depends
    /// on argument order: replicas that merged the same versions in different orders hold the same
    /// cell.
    ///
    /// Why an expiring cell ranks with tombstones: compaction turns an expired cell into a
    /// tombstone whose deletion time is the expiry, and the winner must not change when it does.
    /// Ranking "tombstone first, then later expiry" did change it: of two tied expiring cells the
    /// later-expiring one won until the earlier one was compacted into a tombstone, which then
    /// won, and the surviving value vanished (found by `EngineModelTests`).
    public static func reconcile(_ a: Cell, _ b: Cell) -> Cell {
        if a.timestamp != b.timestamp { return a.timestamp > b.timestamp ? a : b }
        let aEnds = a.isTombstone || a.ttl > 0
        let bEnds = b.isTombstone || b.ttl > 0
        if aEnds != bEnds { return aEnds ? a : b }
        if a.localExpiry != b.localExpiry { return a.localExpiry > b.localExpiry ? a : b }
        if a.isTombstone != b.isTombstone { return a.isTombstone ? a : b }
        if let va = a.value, let vb = b.value {
            let c = compareBytes(va, vb)
            if c != 0 { return c > 0 ? a : b }
        }
        return a.ttl >= b.ttl ? a : b
    }
}

/// Row liveness (Cassandra's primary-key liveness): a row written with INSERT exists even if all its
/// columns are null, until deleted or expired.
public struct LivenessInfo: Hashable, Sendable {
    public var timestamp: Int64
    public var ttl: Int32
    public var expiresAt: Int64

    public init(timestamp: Int64, ttl: Int32 = 0, expiresAt: Int64 = 0) {
        self.timestamp = timestamp
        self.ttl = ttl
        self.expiresAt = ttl > 0 ? expiresAt : 0
    }

    public func isLive(now: Int64) -> Bool { ttl == 0 || expiresAt > now }

    public var isExpiring: Bool { ttl > 0 }

    /// Whether `a` wins over `b` when two versions of a row's liveness meet: the higher timestamp;
    /// on a tie (Cassandra's `LivenessInfo.supersedes`) an expiring liveness beats a permanent one
    /// (the write that will disappear is the one that decides, as a tombstone beats a value), then
    /// the later expiry, then the longer TTL. Every field decides, so this is a strict total order:
    /// the merge is commutative and associative and replicas converge whatever order they merged in.
    public static func supersedes(_ a: LivenessInfo, _ b: LivenessInfo) -> Bool {
        if a.timestamp != b.timestamp { return a.timestamp > b.timestamp }
        if a.isExpiring != b.isExpiring { return a.isExpiring }
        if a.expiresAt != b.expiresAt { return a.expiresAt > b.expiresAt }
        return a.ttl > b.ttl
    }

    /// The winner of `a` and `b` (see `supersedes`).
    public static func reconcile(_ a: LivenessInfo, _ b: LivenessInfo) -> LivenessInfo {
        supersedes(b, a) ? b : a
    }
}
