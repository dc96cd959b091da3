/// One stored row read in place: the clustering key and the encoded `EntryValue` it was stored
/// as, borrowed from a cached SSTable block or a reused buffer, never copied per row. A read that
/// only looks at or copies out its cells allocates nothing per row, where decoding a
/// `RowFragment` allocates the cell array and every value (half of a latest-50 read's time was
/// that decode, perf over `confab-bench storage`).
///
/// Valid only inside the call that hands it out, like `withUnsafeBytes`. Parsing checks every
/// byte (the same rules as `EntryValue.decode`), so a view that exists is well formed and walking
/// its cells cannot fail.
public struct RowView {
    /// The row's clustering key (encoded `ClusteringKey`).
    public let clustering: UnsafeRawBufferPointer
    /// The whole stored value (`EntryValue` row encoding, docs/entry_format.md).
    public let encoded: UnsafeRawBufferPointer
    public let liveness: LivenessInfo?
    public let deletion: DeletionTime?
    public let cellCount: Int
    /// The time (seconds) the read that handed out this view judges liveness at; `.min` for a
    /// view that is not part of a read.
    public let readTime: Int64
    private let cellsStart: Int
    /// Summary gathered while parsing, so liveness and statistics need no second pass.
    let minTimestamp: Int64
    let maxTimestamp: Int64
    let maxLocalDeletionTime: Int64
    let tombstoneCells: Int
    private let permanentCells: Int
    private let minCellExpiry: Int64
    private let maxCellExpiry: Int64
    private let expiringCells: Int

    /// Parses `encoded`; nil when it holds a partition header rather than a row. Throws
    /// `.corruption` for anything `EntryValue.decode` would reject. Inlined into the read merge:
    /// as a call, the parsed view (15 words) was copied into its optional by memmove, 13% of a
    /// latest-50 read's samples.
    @inline(__always)
    init?(clustering: UnsafeRawBufferPointer, encoded: UnsafeRawBufferPointer, readTime: Int64 = .min) throws {
        if encoded.first == EntryValue.headerKind {
            // Headers are rare (deletions); checked by the decoder so a damaged one is reported.
            _ = try EntryValue.decode(Array(encoded))
            return nil
        }
        try self.init(rowAtStartOf: encoded, clustering: clustering, readTime: readTime, whole: true)
    }

    /// Parses the row encoding (kind byte included) at the start of `bytes`; with `whole`, it must
    /// span all of them. `encoded` is the bytes it spans. This is the one parser of a row's cells:
    /// `EntryValue.decode` reads rows through it too.
    init(rowAtStartOf bytes: UnsafeRawBufferPointer, clustering: UnsafeRawBufferPointer, readTime: Int64, whole: Bool)
        throws
    {
        var r = RawReader(bytes, context: "entry value")
        let kind = try r.readByte()
        guard kind == EntryValue.rowKind else { throw r.fail("unknown entry kind \(kind)") }
        let flags = try r.readByte()
        guard flags & ~3 == 0 else { throw r.fail("unknown row flags \(flags)") }
        var lo = Int64.max
        var hi = Int64.min
        var maxLocal = Int64.min
        var liveness: LivenessInfo? = nil
        var deletion: DeletionTime? = nil
        if flags & 1 != 0 {
            let ts = try r.readSignedVarint()
            let ttl = Int32(bitPattern: UInt32(truncatingIfNeeded: try r.readVarint()))
            let exp = ttl > 0 ? try r.readSignedVarint() : 0
            let l = LivenessInfo(timestamp: ts, ttl: ttl, expiresAt: exp)
            (lo, hi) = (min(lo, ts), max(hi, ts))
            if l.ttl > 0 { maxLocal = max(maxLocal, l.expiresAt) }
            liveness = l
        }
        if flags & 2 != 0 {
            let d = DeletionTime(timestamp: try r.readSignedVarint(), localDeletionTime: try r.readSignedVarint())
            (lo, hi) = (min(lo, d.timestamp), max(hi, d.timestamp))
            maxLocal = max(maxLocal, d.localDeletionTime)
            deletion = d
        }
        let n = try r.readVarintInt(max: 1 << 20)
        let cellsStart = r.position
        var tombstones = 0
        var permanent = 0
        var expiring = 0
        var minExpiry = Int64.max
        var maxExpiry = Int64.min
        // One checked pass over the cells (inline: through a closure it was most of a read's
        // parse time).
        var lastColumn: Int64 = -1
        for _ in 0..<n {
            let column = try r.readVarint()
            guard column <= UInt64(UInt32.max), Int64(column) > lastColumn else {
                throw r.fail("cell columns out of order")
            }
            lastColumn = Int64(column)
            let cf = try r.readByte()
            guard cf & ~3 == 0 else { throw r.fail("unknown cell flags \(cf)") }
            let ts = try r.readSignedVarint()
            (lo, hi) = (min(lo, ts), max(hi, ts))
            let isTombstone = cf & 1 != 0
            let hasExpiry = cf & 2 != 0
            let local = (isTombstone || hasExpiry) ? try r.readSignedVarint() : 0
            let ttl = hasExpiry ? Int32(bitPattern: UInt32(truncatingIfNeeded: try r.readVarint())) : 0
            if isTombstone {
                tombstones += 1
                maxLocal = max(maxLocal, local)
                continue
            }
            _ = try r.readLengthPrefixed()
            if ttl == 0 {
                permanent += 1
            } else {
                // As `Cell`: the expiry counts only for a positive TTL.
                let expiry = ttl > 0 ? local : 0
                expiring += 1
                (minExpiry, maxExpiry) = (min(minExpiry, expiry), max(maxExpiry, expiry))
                if ttl > 0 { maxLocal = max(maxLocal, expiry) }
            }
        }
        if whole, !r.isAtEnd { throw r.fail("\(r.remaining) trailing bytes") }
        self.clustering = clustering
        self.encoded = UnsafeRawBufferPointer(rebasing: bytes[0..<r.position])
        self.liveness = liveness
        self.deletion = deletion
        self.cellCount = n
        self.readTime = readTime
        self.cellsStart = cellsStart
        self.minTimestamp = lo
        self.maxTimestamp = hi
        self.maxLocalDeletionTime = maxLocal
        self.tombstoneCells = tombstones
        self.permanentCells = permanent
        self.expiringCells = expiring
        self.minCellExpiry = minExpiry
        self.maxCellExpiry = maxExpiry
    }

    /// Calls `body` with each cell in column order.
    public func forEachCell(_ body: (CellView) throws -> Void) rethrows {
        // Parsing checked these bytes, and they do not change while the view lives, so this walk
        // reads without checks beyond the buffer's bounds.
        var p = cellsStart
        let b = encoded
        func varint() -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = b[p]
                p += 1
                result |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return result }
                shift += 7
            }
        }
        func signed() -> Int64 {
            let u = varint()
            return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
        }
        for _ in 0..<cellCount {
            let column = UInt32(truncatingIfNeeded: varint())
            let cf = b[p]
            p += 1
            let ts = signed()
            let isTombstone = cf & 1 != 0
            let expiring = cf & 2 != 0
            let local = (isTombstone || expiring) ? signed() : 0
            let ttl = expiring ? Int32(bitPattern: UInt32(truncatingIfNeeded: varint())) : 0
            var value: UnsafeRawBufferPointer? = nil
            if !isTombstone {
                let n = Int(varint())
                value = UnsafeRawBufferPointer(rebasing: b[p..<(p + n)])
                p += n
            }
            try body(
                CellView(
                    column: column, timestamp: ts, value: value, ttl: isTombstone ? 0 : ttl,
                    localExpiry: isTombstone || ttl > 0 ? local : 0))
        }
    }

    /// Calls `body` with each cell live at `readTime`, in column order: what a read returns.
    public func forEachLiveCell(_ body: (CellView) throws -> Void) rethrows {
        if allCellsLive(now: readTime) { return try forEachCell(body) }
        try forEachCell { c in if c.isLive(now: readTime) { try body(c) } }
    }

    /// True when the row has something visible at `now` (as `RowFragment.isLive`).
    public func isLive(now: Int64) -> Bool {
        if let l = liveness, l.isLive(now: now) { return true }
        return permanentCells > 0 || (expiringCells > 0 && maxCellExpiry > now)
    }

    /// True when every cell is live at `now`: no tombstones and nothing expired.
    public func allCellsLive(now: Int64) -> Bool {
        tombstoneCells == 0 && (expiringCells == 0 || minCellExpiry > now)
    }

    /// The row as an owned fragment (allocates its cells).
    public func fragment() -> RowFragment {
        var row = RowFragment()
        row.liveness = liveness
        row.deletion = deletion
        row.cells.reserveCapacity(cellCount)
        forEachCell { row.cells.append($0.cell()) }
        return row
    }

    /// The clustering key as an owned array.
    public var clusteringBytes: [UInt8] { Array(clustering) }

    /// Tombstones in the row as `RowFragment.tombstoneCount(now: .min)` counts them.
    var tombstoneCountForStatistics: Int { (deletion == nil ? 0 : 1) + tombstoneCells }
}

/// One cell of a `RowView`, its value borrowed like the view.
public struct CellView {
    public let column: UInt32
    public let timestamp: Int64
    /// nil for a cell tombstone.
    public let value: UnsafeRawBufferPointer?
    public let ttl: Int32
    /// As `Cell.localExpiry`.
    public let localExpiry: Int64

    public var isTombstone: Bool { value == nil }

    /// As `Cell.isLive`.
    public func isLive(now: Int64) -> Bool {
        guard value != nil else { return false }
        return ttl == 0 || localExpiry > now
    }

    /// The cell as an owned `Cell` (copies the value).
    public func cell() -> Cell {
        guard let value else { return .tombstone(column: column, timestamp: timestamp, localDeletionTime: localExpiry) }
        var c = Cell(column: column, timestamp: timestamp, value: Array(value), ttl: ttl, expiresAt: localExpiry)
        c.localExpiry = localExpiry
        return c
    }
}
