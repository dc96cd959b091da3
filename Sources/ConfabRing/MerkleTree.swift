import ConfabEngine

/// A hash tree over a token range, for anti-entropy repair (Cassandra's `MerkleTree` built by a
/// validation compaction): two replicas build one each over the same range and compare; only the
/// sub-ranges whose hashes differ are streamed.
///
/// The range is split into `2^depth` equal leaves (1,024 by default). A leaf's hash combines the
/// hashes of the rows whose tokens fall in it with an order-independent sum/xor, so rows may be
/// added in any order (the shell feeds one entry per partition, e.g. its token and its encoded
/// content). Inner nodes hash their two children. Equal trees mean equal data except with
/// probability about 2^-128 per leaf.
public struct MerkleTree: Hashable, Sendable {
    /// A 128-bit node hash; `.zero` for an empty leaf.
    public struct Hash: Hashable, Sendable {
        public var a: UInt64
        public var b: UInt64
        public static let zero = Hash(a: 0, b: 0)

        public init(a: UInt64, b: UInt64) {
            self.a = a
            self.b = b
        }
    }

    public let range: TokenRange
    public let depth: Int
    public private(set) var leaves: [Hash]
    public private(set) var rowCount = 0

    public init(range: TokenRange, depth: Int = 10) {
        precondition((0...20).contains(depth), "depth must be 0...20")
        self.range = range
        self.depth = depth
        self.leaves = Array(repeating: .zero, count: 1 << depth)
    }

    /// A tree rebuilt from its leaf hashes, as a replica sent them; nil when the leaf count does
    /// not match the depth.
    public init?(range: TokenRange, depth: Int, leaves: [Hash], rowCount: Int = 0) {
        guard (0...20).contains(depth), leaves.count == 1 << depth else { return nil }
        self.range = range
        self.depth = depth
        self.leaves = leaves
        self.rowCount = rowCount
    }

    public var leafCount: Int { 1 << depth }

    /// Adds one row (or partition) whose token is in the tree's range.
    public mutating func add(token: Token, bytes: some Collection<UInt8>) {
        precondition(range.contains(token), "token \(token) outside \(range)")
        var input: [UInt8] = []
        input.reserveCapacity(8 + bytes.count)
        let t = UInt64(bitPattern: token.value)
        for s in stride(from: 56, through: 0, by: -8) { input.append(UInt8(truncatingIfNeeded: t >> UInt64(s))) }
        input.append(contentsOf: bytes)
        let (h1, h2) = input.withUnsafeBytes { Murmur3.hash128($0, seed: 0x6d65_726b_6c65) }
        let i = leafIndex(for: token)
        leaves[i].a &+= h1
        leaves[i].b ^= h2
        rowCount += 1
    }

    /// The leaf a token falls in: floor(offset × 2^depth / width), offset counted from the range
    /// start, in 128-bit arithmetic so wide and wrapping ranges work.
    public func leafIndex(for token: Token) -> Int {
        let offset = range.start.distance(to: token) &- 1
        let width = range.width
        if depth == 0 { return 0 }
        let hi = offset >> UInt64(64 - depth)
        let lo = offset << UInt64(depth)
        if width == 0 { return Int(hi) }  // the full ring: 2^64 tokens
        return Int(width.dividingFullWidth((hi, lo)).quotient)
    }

    /// The sub-range leaf `i` covers; leaves partition the range exactly.
    public func leafRange(_ i: Int) -> TokenRange {
        TokenRange(start: range.start.advanced(by: boundary(i)), end: range.start.advanced(by: boundary(i + 1)))
    }

    /// ceil(i × width / 2^depth), the offset where leaf `i` starts (exclusive).
    private func boundary(_ i: Int) -> UInt64 {
        let width = range.width
        let (hi, lo): (UInt64, UInt64) = width == 0 ? (UInt64(i), 0) : width.multipliedFullWidth(by: UInt64(i))
        if depth == 0 { return i == 0 ? 0 : width }
        let mask = (UInt64(1) << UInt64(depth)) - 1
        var q = (lo >> UInt64(depth)) | (hi << UInt64(64 - depth))
        if lo & mask != 0 { q &+= 1 }
        return q
    }

    /// Hashes of every level, root first (`levels[depth]` are the leaves).
    func levels() -> [[Hash]] {
        var out = [leaves]
        while out[0].count > 1 {
            let below = out[0]
            var level: [Hash] = []
            level.reserveCapacity(below.count / 2)
            for i in stride(from: 0, to: below.count, by: 2) {
                level.append(Self.combine(below[i], below[i + 1]))
            }
            out.insert(level, at: 0)
        }
        return out
    }

    static func combine(_ l: Hash, _ r: Hash) -> Hash {
        if l == .zero && r == .zero { return .zero }
        let words = [l.a, l.b, r.a, r.b]
        let (x, y) = words.withUnsafeBytes { Murmur3.hash128($0, seed: 0x6e6f_6465) }
        return Hash(a: x, b: y)
    }

    public var rootHash: Hash { levels()[0][0] }

    /// The sub-ranges where `a` and `b` differ, adjacent leaves merged, in token order. Both trees
    /// must cover the same range at the same depth.
    public static func difference(_ a: MerkleTree, _ b: MerkleTree) -> [TokenRange] {
        precondition(a.range == b.range && a.depth == b.depth, "trees over different ranges or depths")
        let la = a.levels()
        let lb = b.levels()
        var differing: [Int] = []
        func walk(_ level: Int, _ i: Int) {
            guard la[level][i] != lb[level][i] else { return }
            if level == a.depth {
                differing.append(i)
                return
            }
            walk(level + 1, 2 * i)
            walk(level + 1, 2 * i + 1)
        }
        walk(0, 0)
        var out: [TokenRange] = []
        var previous = -2
        for i in differing {
            let r = a.leafRange(i)
            if i == previous + 1 { out[out.count - 1].end = r.end } else { out.append(r) }
            previous = i
        }
        return out
    }
}
