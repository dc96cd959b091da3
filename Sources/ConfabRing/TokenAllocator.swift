/// Chooses vnode tokens for a joining node so that the data each node stores stays balanced.
///
/// What a node stores is its *effective* ownership at the replication factor (every range it is
/// one of the RF replicas of), not the ranges it is primary for. Balancing primary ownership alone
/// leaves effective ownership far off: with 16 tokens and RF 3, a fourth node joining three nodes
/// laid out by primary ownership left nodes holding from 0.43 to 1.00 of the ring, a 2.3× spread of
/// disk per node (one CI run), and 8 nodes were up to 129% off.
///
/// Like Cassandra 4's `ReplicationAwareTokenAllocator` (`allocate_tokens_for_local_replication_
/// factor`), each new token goes where it best reduces the spread of replicated ownership: every
/// existing range is tried at seven split points, each candidate scored by the squared deviation
/// of every node's effective ownership from RF/N plus that of primary ownership from 1/N. After
/// the greedy pass, each chosen token is moved again to its best place given the others, until no
/// move improves the score (at most four passes, and none when vnodes × ring tokens exceeds 2^16):
/// a greedy choice made when the node had few tokens is often not the best once it has all of them.
///
/// While the ring has no more nodes than RF, every node stores everything; the score then adds the
/// effective ownership at N−1, so the first nodes are interleaved in a way the next node can
/// balance (placing nodes by primary ownership alone leaves runs of one node's tokens).
///
/// Deterministic for a given ring and random generator (the generator only picks the first node's
/// offset). The first node's tokens are evenly spaced.
package struct TokenAllocator: Sendable {
    package var tokensPerNode: Int
    package var replicationFactor: Int

    package init(tokensPerNode: Int = 16, replicationFactor: Int = 3) {
        self.tokensPerNode = tokensPerNode
        self.replicationFactor = replicationFactor
    }

    /// Tokens for `node` joining `ring` (the node must not be in it yet).
    package func allocate(
        for node: NodeID, in ring: TokenRing,
        using rng: inout some RandomNumberGenerator
    ) -> [Token] {
        precondition(tokensPerNode > 0)
        if ring.isEmpty {
            let step = UInt64.max / UInt64(tokensPerNode)
            let offset = UInt64.random(in: 0...step, using: &rng)
            return (0..<tokensPerNode).map { Token(Int64(bitPattern: offset &+ UInt64($0) &* step)) }
        }
        var layout = AllocationLayout(ring: ring, adding: node, replicationFactor: replicationFactor)
        var chosen: [Token] = []
        for _ in 0..<tokensPerNode {
            guard let pick = layout.bestInsertion() else { break }
            layout.insert(pick.token)
            assert(abs(layout.score() - pick.score) < 1e-9, "incremental score \(pick.score) ≠ \(layout.score())")
            chosen.append(pick.token)
        }
        // Re-placing costs a pass over the ring per token again; with many vnodes on a big ring
        // the greedy pass alone is kept (each token is then a small share, so it balances well)
        // and a join's allocation stays short.
        let passes = tokensPerNode * layout.tokens.count <= 1 << 16 ? 4 : 0
        for _ in 0..<passes {
            var moved = false
            for k in chosen.indices {
                let current = layout.score()
                layout.remove(chosen[k])
                if let pick = layout.bestInsertion(), pick.score < current - 1e-12 {
                    chosen[k] = pick.token
                    moved = true
                }
                layout.insert(chosen[k])
            }
            if !moved { break }
        }
        return chosen.sorted()
    }
}

/// The ring as flat arrays, with the joining node as the last owner index. Candidates are scored
/// incrementally: inserting a token changes only the range it splits and the few ranges whose
/// replica walk passes the gap it lands in, so each of the ~7·E candidates per token costs a few
/// walks instead of a pass over the ring.
private struct AllocationLayout {
    /// Effective ownership at one replication factor, with each range's replicas and how many
    /// entries its walk visited (which tells what an insertion can change).
    struct Term {
        let r: Int
        let ideal: Double
        var share: [Double] = []
        var replicas: [[Int]] = []
        var visited: [Int] = []
        var maxVisited = 0
    }

    var tokens: [Token]
    var owners: [Int]
    let nodeCount: Int
    let newNode: Int
    var terms: [Term]

    init(ring: TokenRing, adding node: NodeID, replicationFactor: Int) {
        let ids = ring.nodes
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        tokens = ring.entries.map(\.token)
        owners = ring.entries.map { index[$0.node]! }
        nodeCount = ids.count + 1
        newNode = ids.count
        let n = nodeCount
        let rf = min(replicationFactor, n)
        var rs = [1]
        if rf > 1 && rf < n { rs.append(rf) }
        // Every node holds everything at RF: score N−1 so the layout interleaves nodes.
        if replicationFactor >= n && n > 2 { rs.append(n - 1) }
        terms = rs.map { Term(r: $0, ideal: Double($0) / Double(n)) }
        refresh()
    }

    static func fraction(_ width: UInt64) -> Double { Double(width) / 18_446_744_073_709_551_616.0 }

    func width(ofEntry i: Int) -> UInt64 {
        tokens.count == 1 ? UInt64.max : tokens[(i + tokens.count - 1) % tokens.count].distance(to: tokens[i])
    }

    mutating func refresh() {
        let count = tokens.count
        for t in terms.indices {
            let r = terms[t].r
            var share = [Double](repeating: 0, count: nodeCount)
            var replicas: [[Int]] = []
            var visited: [Int] = []
            replicas.reserveCapacity(count)
            visited.reserveCapacity(count)
            for i in 0..<count {
                let (reps, steps) = walk(from: i, r: r, count: count) { owners[$0] }
                let f = Self.fraction(width(ofEntry: i))
                for o in reps { share[o] += f }
                replicas.append(reps)
                visited.append(steps)
            }
            terms[t].share = share
            terms[t].replicas = replicas
            terms[t].visited = visited
            terms[t].maxVisited = visited.max() ?? 0
        }
    }

    /// The first `r` distinct owners clockwise from entry `start` and how many entries that took.
    func walk(from start: Int, r: Int, count: Int, owner: (Int) -> Int) -> ([Int], Int) {
        var out: [Int] = []
        out.reserveCapacity(r)
        var j = start
        var steps = 0
        while steps < count && out.count < r {
            let o = owner(j)
            if !out.contains(o) { out.append(o) }
            steps += 1
            j = j + 1 == count ? 0 : j + 1
        }
        return (out, steps)
    }

    mutating func insert(_ token: Token) {
        let i = tokens.firstIndex { $0 > token } ?? tokens.count
        tokens.insert(token, at: i)
        owners.insert(newNode, at: i)
        refresh()
    }

    mutating func remove(_ token: Token) {
        let i = tokens.firstIndex(of: token)!
        tokens.remove(at: i)
        owners.remove(at: i)
        refresh()
    }

    func score() -> Double {
        var s = 0.0
        for term in terms { for f in term.share { s += (f - term.ideal) * (f - term.ideal) } }
        return s
    }

    /// The best of seven split points in every range, with its score.
    func bestInsertion() -> (token: Token, score: Double)? {
        let count = tokens.count
        var best: (token: Token, score: Double)? = nil
        for p in 0..<count {
            let w = width(ofEntry: p)
            guard w > 8 else { continue }
            // The circular layout with the new node's entry at index p (a rotation of the sorted
            // one when the token lands past the last).
            let virtualOwner = { (v: Int) -> Int in v < p ? owners[v] : v == p ? newNode : owners[v - 1] }
            var parts: [(share: [Double], left: [Int], right: [Int], ideal: Double)] = []
            for term in terms {
                var s = term.share
                let old = Self.fraction(w)
                for o in term.replicas[p] { s[o] -= old }
                var d = 0
                while d < min(term.maxVisited - 1, count) {
                    let j = (p - 1 - d + 2 * count) % count
                    if j != p && d < term.visited[j] - 1 {
                        let f = Self.fraction(width(ofEntry: j))
                        for o in term.replicas[j] { s[o] -= f }
                        let (reps, _) = walk(from: j < p ? j : j + 1, r: term.r, count: count + 1, owner: virtualOwner)
                        for o in reps { s[o] += f }
                    }
                    d += 1
                }
                let left = walk(from: p, r: term.r, count: count + 1, owner: virtualOwner).0
                let right = walk(from: p + 1, r: term.r, count: count + 1, owner: virtualOwner).0
                parts.append((s, left, right, term.ideal))
            }
            let start = tokens[(p + count - 1) % count]
            for eighth in UInt64(1)...7 {
                let steal = w / 8 * eighth
                let a = Self.fraction(steal)
                let b = Self.fraction(w - steal)
                var score = 0.0
                for part in parts {
                    var s = part.share
                    for o in part.left { s[o] += a }
                    for o in part.right { s[o] += b }
                    for f in s { score += (f - part.ideal) * (f - part.ideal) }
                }
                if best == nil || score < best!.score { best = (start.advanced(by: steal), score) }
            }
        }
        return best
    }
}
