import ConfabRing

/// Asks the receiving node to coordinate an anti-entropy repair of every vnode range it
/// replicates (`confab repair`). The answer, a `RepairReport`, comes when the session ends; a
/// session that cannot finish (a replica down) answers Error `unavailable` or `timeout`. With
/// `progress`, `RepairProgress` frames come on the same stream before that answer.
public struct RepairRequest: Hashable, Sendable {
    /// Merkle tree depth (2^depth leaves per range); 0 means the node's default (10).
    public var depth: UInt8
    /// Whether the node sends `RepairProgress` frames while it works (flags bit 0 on the wire).
    public var progress: Bool

    public init(depth: UInt8 = 0, progress: Bool = false) {
        self.depth = depth
        self.progress = progress
    }
}

/// How far a repair session has got, sent by the coordinating node on the Repair request's stream
/// (zero or more before the final RepairResponse or Error) when the request asked for it: after
/// each table's start and after each range it finished. Counts are cumulative per table; the
/// overall counts cover every table of the session.
public struct RepairProgress: Hashable, Sendable, Codable {
    public var keyspace: String
    public var table: String
    /// 1-based position of the table in the session, and the session's table count.
    public var tableIndex: Int
    public var tableCount: Int
    /// Ranges of this table compared so far, and in all.
    public var rangesDone: Int
    public var rangesTotal: Int
    /// Ranges of this table where two replicas' trees differed.
    public var rangesDiffering: Int
    /// Sub-ranges streamed for this table (each direction counted).
    public var subrangesStreamed: Int
    /// Rows streamed for this table (as the receiving replicas acknowledged them).
    public var rowsStreamed: UInt64
    /// Ranges done and in all over every table of the session.
    public var overallRangesDone: Int
    public var overallRangesTotal: Int
    /// Since the session started.
    public var elapsedMicros: UInt64

    public init(
        keyspace: String, table: String, tableIndex: Int, tableCount: Int, rangesDone: Int, rangesTotal: Int,
        rangesDiffering: Int, subrangesStreamed: Int, rowsStreamed: UInt64, overallRangesDone: Int,
        overallRangesTotal: Int, elapsedMicros: UInt64
    ) {
        self.keyspace = keyspace
        self.table = table
        self.tableIndex = tableIndex
        self.tableCount = tableCount
        self.rangesDone = rangesDone
        self.rangesTotal = rangesTotal
        self.rangesDiffering = rangesDiffering
        self.subrangesStreamed = subrangesStreamed
        self.rowsStreamed = rowsStreamed
        self.overallRangesDone = overallRangesDone
        self.overallRangesTotal = overallRangesTotal
        self.elapsedMicros = elapsedMicros
    }

    /// Share of the session's ranges done, 0...100 (100 when there is nothing to compare).
    public var percent: Double {
        overallRangesTotal == 0 ? 100 : 100 * Double(overallRangesDone) / Double(overallRangesTotal)
    }
}

/// What a repair session did, per range and in total.
public struct RepairReport: Hashable, Sendable, Codable {
    public struct RangeOutcome: Hashable, Sendable, Codable {
        /// The vnode range `(start, end]`, as signed token values.
        public var start: Int64
        public var end: Int64
        /// How many replicas took part.
        public var replicas: Int
        /// Sub-ranges streamed for this range (each direction counted); 0 when in sync.
        public var subrangesStreamed: Int
        public var elapsedMicros: UInt64
        /// The table repaired (ranges are compared per table, among its keyspace's replicas).
        public var keyspace: String = ""
        public var table: String = ""
        /// Rows streamed for this range (each direction counted).
        public var rowsStreamed: UInt64 = 0

        public init(start: Int64, end: Int64, replicas: Int, subrangesStreamed: Int, elapsedMicros: UInt64) {
            self.start = start
            self.end = end
            self.replicas = replicas
            self.subrangesStreamed = subrangesStreamed
            self.elapsedMicros = elapsedMicros
        }

        public init(
            keyspace: String, table: String, start: Int64, end: Int64, replicas: Int, subrangesStreamed: Int,
            rowsStreamed: UInt64, elapsedMicros: UInt64
        ) {
            self.init(
                start: start, end: end, replicas: replicas, subrangesStreamed: subrangesStreamed,
                elapsedMicros: elapsedMicros)
            self.keyspace = keyspace
            self.table = table
            self.rowsStreamed = rowsStreamed
        }

        public var range: TokenRange { TokenRange(start: Token(start), end: Token(end)) }
    }

    /// The coordinating node's id.
    public var coordinator: String
    public var ranges: [RangeOutcome]
    public var elapsedMicros: UInt64

    public init(coordinator: String, ranges: [RangeOutcome], elapsedMicros: UInt64) {
        self.coordinator = coordinator
        self.ranges = ranges
        self.elapsedMicros = elapsedMicros
    }

    public var rangesOutOfSync: Int { ranges.filter { $0.subrangesStreamed > 0 }.count }
    public var subrangesStreamed: Int { ranges.reduce(0) { $0 + $1.subrangesStreamed } }
    public var rowsStreamed: UInt64 { ranges.reduce(0) { $0 + $1.rowsStreamed } }
}

/// A repair coordinator's request for a replica's Merkle tree of one range (validation).
public struct MerkleTreeRequest: Hashable, Sendable {
    public var keyspace: String
    public var table: String
    public var range: TokenRange
    public var depth: Int

    public init(keyspace: String, table: String, range: TokenRange, depth: Int) {
        self.keyspace = keyspace
        self.table = table
        self.range = range
        self.depth = depth
    }
}

/// A Merkle tree on the wire: its range, depth and leaf hashes. Inner nodes are not sent — the
/// receiver recomputes them from the leaves, so the encoding is just 16 bytes a leaf.
public struct MerkleTreeLeaves: Hashable, Sendable {
    public var range: TokenRange
    public var depth: Int
    /// Rows and partition headers hashed into the tree (for logs and reports).
    public var rowCount: UInt64
    /// 2^depth leaf hashes `(a, b)`, in token order; (0, 0) for an empty leaf.
    public var leaves: [MerkleLeafHash]

    public init(range: TokenRange, depth: Int, rowCount: UInt64, leaves: [MerkleLeafHash]) {
        self.range = range
        self.depth = depth
        self.rowCount = rowCount
        self.leaves = leaves
    }

    /// The wire form of a tree built with `MerkleTree.build`.
    public init(_ tree: MerkleTree) {
        self.init(
            range: tree.range, depth: tree.depth, rowCount: UInt64(tree.rowCount),
            leaves: tree.leaves.map { MerkleLeafHash(a: $0.a, b: $0.b) })
    }
}

/// One leaf's 128-bit hash.
public struct MerkleLeafHash: Hashable, Sendable {
    public var a: UInt64
    public var b: UInt64

    public init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }

    public var isZero: Bool { a == 0 && b == 0 }
}

/// Asks a replica (the source) to send its data in `ranges` to `target` as ReplicaWrite
/// mutations (the sync step of repair). Answered with `StreamRangesDone` once the target
/// acknowledged every mutation.
public struct StreamRangesRequest: Hashable, Sendable {
    public var keyspace: String
    public var table: String
    public var target: NodeAddress
    public var ranges: [TokenRange]

    public init(keyspace: String, table: String, target: NodeAddress, ranges: [TokenRange]) {
        self.keyspace = keyspace
        self.table = table
        self.target = target
        self.ranges = ranges
    }
}

/// What a finished stream carried.
public struct StreamRangesDone: Hashable, Sendable {
    public var mutations: UInt32
    public var rows: UInt64

    public init(mutations: UInt32, rows: UInt64) {
        self.mutations = mutations
        self.rows = rows
    }
}

extension MerkleTreeLeaves {
    /// The tree as the replica built it, rebuilt from its leaves (nil if they do not fit the
    /// depth).
    public func tree() -> MerkleTree? {
        MerkleTree(range: range, depth: depth, leaves: leaves.map { MerkleTree.Hash(a: $0.a, b: $0.b) })
    }
}

// MARK: Encoding

extension WireWriter {
    mutating func range(_ r: TokenRange) {
        i64(r.start.value)
        i64(r.end.value)
    }
}

extension WireReader {
    mutating func range(_ field: String) throws(WireError) -> TokenRange {
        TokenRange(start: Token(try i64("\(field) start")), end: Token(try i64("\(field) end")))
    }
}

extension RepairReport {
    func encode(into w: inout WireWriter) {
        w.string(coordinator)
        w.u64(elapsedMicros)
        w.u32(UInt32(ranges.count))
        for r in ranges {
            w.i64(r.start)
            w.i64(r.end)
            w.u8(UInt8(clamping: r.replicas))
            w.u32(UInt32(clamping: r.subrangesStreamed))
            w.u64(r.elapsedMicros)
            w.string(r.keyspace)
            w.string(r.table)
            w.u64(r.rowsStreamed)
        }
    }

    static func decode(from r: inout WireReader) throws(WireError) -> RepairReport {
        let coordinator = try r.string("coordinator")
        let elapsed = try r.u64("elapsed")
        let count = try r.u32("range count")
        guard count <= 1_000_000 else { throw r.fail("implausible range count \(count)") }
        var ranges: [RangeOutcome] = []
        for _ in 0..<count {
            var outcome = RangeOutcome(
                start: try r.i64("range start"), end: try r.i64("range end"),
                replicas: Int(try r.u8("replicas")),
                subrangesStreamed: Int(try r.u32("sub-ranges streamed")),
                elapsedMicros: try r.u64("range elapsed"))
            outcome.keyspace = try r.string("range keyspace")
            outcome.table = try r.string("range table")
            outcome.rowsStreamed = try r.u64("range rows streamed")
            ranges.append(outcome)
        }
        return RepairReport(coordinator: coordinator, ranges: ranges, elapsedMicros: elapsed)
    }
}

extension RepairRequest {
    func encode(into w: inout WireWriter) {
        w.u8(depth)
        w.u8(progress ? 0x01 : 0x00)
    }

    static func decode(from r: inout WireReader) throws(WireError) -> RepairRequest {
        let depth = try r.u8("depth")
        let flags = try r.u8("flags")
        guard flags & ~0x01 == 0 else { throw r.fail("unknown repair flags 0x\(String(flags, radix: 16))") }
        return RepairRequest(depth: depth, progress: flags & 0x01 != 0)
    }
}

extension RepairProgress {
    func encode(into w: inout WireWriter) {
        w.string(keyspace)
        w.string(table)
        w.u16(UInt16(clamping: tableIndex))
        w.u16(UInt16(clamping: tableCount))
        w.u32(UInt32(clamping: rangesDone))
        w.u32(UInt32(clamping: rangesTotal))
        w.u32(UInt32(clamping: rangesDiffering))
        w.u32(UInt32(clamping: subrangesStreamed))
        w.u64(rowsStreamed)
        w.u32(UInt32(clamping: overallRangesDone))
        w.u32(UInt32(clamping: overallRangesTotal))
        w.u64(elapsedMicros)
    }

    static func decode(from r: inout WireReader) throws(WireError) -> RepairProgress {
        RepairProgress(
            keyspace: try r.string("keyspace"), table: try r.string("table"),
            tableIndex: Int(try r.u16("table index")), tableCount: Int(try r.u16("table count")),
            rangesDone: Int(try r.u32("ranges done")), rangesTotal: Int(try r.u32("ranges total")),
            rangesDiffering: Int(try r.u32("ranges differing")),
            subrangesStreamed: Int(try r.u32("sub-ranges streamed")), rowsStreamed: try r.u64("rows streamed"),
            overallRangesDone: Int(try r.u32("overall ranges done")),
            overallRangesTotal: Int(try r.u32("overall ranges total")), elapsedMicros: try r.u64("elapsed"))
    }
}

extension MerkleTreeRequest {
    func encode(into w: inout WireWriter) {
        w.string(keyspace)
        w.string(table)
        w.range(range)
        w.u8(UInt8(clamping: depth))
    }

    static func decode(from r: inout WireReader) throws(WireError) -> MerkleTreeRequest {
        let keyspace = try r.string("keyspace")
        let table = try r.string("table")
        let range = try r.range("range")
        let depth = Int(try r.u8("depth"))
        guard depth <= MerkleTreeLeaves.maxDepth else {
            throw WireError(.invalid, "MerkleTreeRequest: depth \(depth) above \(MerkleTreeLeaves.maxDepth)")
        }
        return MerkleTreeRequest(keyspace: keyspace, table: table, range: range, depth: depth)
    }
}

extension MerkleTreeLeaves {
    /// The deepest tree a node builds or accepts: 2^16 leaves, 1 MiB on the wire.
    public static let maxDepth = 16

    func encode(into w: inout WireWriter) {
        w.range(range)
        w.u8(UInt8(clamping: depth))
        w.u64(rowCount)
        w.bytes.reserveCapacity(w.bytes.count + leaves.count * 16)
        for leaf in leaves {
            w.u64(leaf.a)
            w.u64(leaf.b)
        }
    }

    static func decode(from r: inout WireReader) throws(WireError) -> MerkleTreeLeaves {
        let range = try r.range("range")
        let depth = Int(try r.u8("depth"))
        guard depth <= maxDepth else { throw r.fail("depth \(depth) above \(maxDepth)") }
        let rows = try r.u64("row count")
        var leaves: [MerkleLeafHash] = []
        leaves.reserveCapacity(1 << depth)
        for _ in 0..<(1 << depth) {
            leaves.append(MerkleLeafHash(a: try r.u64("leaf hash"), b: try r.u64("leaf hash")))
        }
        return MerkleTreeLeaves(range: range, depth: depth, rowCount: rows, leaves: leaves)
    }
}

extension StreamRangesRequest {
    func encode(into w: inout WireWriter) {
        w.string(keyspace)
        w.string(table)
        w.string(target.host)
        w.u16(UInt16(clamping: target.port))
        w.u32(UInt32(ranges.count))
        for r in ranges { w.range(r) }
    }

    static func decode(from r: inout WireReader) throws(WireError) -> StreamRangesRequest {
        let keyspace = try r.string("keyspace")
        let table = try r.string("table")
        let host = try r.string("target host")
        let port = Int(try r.u16("target port"))
        let count = try r.u32("range count")
        guard count <= 100_000 else { throw r.fail("implausible range count \(count)") }
        var ranges: [TokenRange] = []
        for _ in 0..<count { ranges.append(try r.range("range")) }
        return StreamRangesRequest(
            keyspace: keyspace, table: table, target: NodeAddress(host: host, port: port), ranges: ranges)
    }
}
