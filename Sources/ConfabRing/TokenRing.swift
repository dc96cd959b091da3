/// The token ring: which node owns which vnode tokens, and from that, which nodes replicate a key.
///
/// Each node owns several tokens (vnodes, 16 by default). The node owning token `t` is the primary
/// replica of the range `(previous token, t]`. Replicas of a key are found as in Cassandra's
/// SimpleStrategy: walk clockwise from the key's token and take the next `RF` distinct nodes.
///
/// A value: the shell rebuilds or updates it from gossip (nodes in NORMAL or LEAVING state) and
/// hands copies to coordinators. Lookups are O(log tokens) plus a walk of about RF tokens.
package struct TokenRing: Hashable, Sendable {
    /// One vnode: a token and the node that owns it.
    package struct Entry: Hashable, Sendable {
        package var token: Token
        package var node: NodeID
    }

    /// Sorted by token; tokens are unique.
    package private(set) var entries: [Entry] = []
    private var tokensByNode: [NodeID: [Token]] = [:]

    package init() {}

    /// A ring with the given tokens per node. Throws `invalidArgument` if two nodes claim a token.
    package init(_ assignments: [NodeID: [Token]]) throws {
        for (node, tokens) in assignments.sorted(by: { $0.key < $1.key }) {
            try add(node, tokens: tokens)
        }
    }

    package var isEmpty: Bool { entries.isEmpty }
    /// Nodes in the ring, sorted by id.
    package var nodes: [NodeID] { tokensByNode.keys.sorted() }
    package var nodeCount: Int { tokensByNode.count }
    package func tokens(of node: NodeID) -> [Token] { tokensByNode[node] ?? [] }
    package func contains(_ node: NodeID) -> Bool { tokensByNode[node] != nil }

    /// Adds a node with its tokens, replacing tokens it had. Throws `invalidArgument` if another
    /// node owns one of the tokens (the ring is unchanged then).
    package mutating func add(_ node: NodeID, tokens: [Token]) throws {
        let unique = Set(tokens)
        for e in entries where e.node != node && unique.contains(e.token) {
            throw RingError(.invalidArgument, "token \(e.token) of \(node) is already owned by \(e.node)")
        }
        remove(node)
        tokensByNode[node] = unique.sorted()
        entries.append(contentsOf: unique.map { Entry(token: $0, node: node) })
        entries.sort { $0.token < $1.token }
    }

    package mutating func remove(_ node: NodeID) {
        guard tokensByNode.removeValue(forKey: node) != nil else { return }
        entries.removeAll { $0.node == node }
    }

    // MARK: Lookup

    /// Index of the first entry whose token is >= `token`, wrapping to 0 past the last.
    func entryIndex(for token: Token) -> Int {
        var lo = 0
        var hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].token < token { lo = mid + 1 } else { hi = mid }
        }
        return lo == entries.count ? 0 : lo
    }

    /// The range `(previous token, entries[i].token]` that entry `i` is primary for.
    func range(ofEntry i: Int) -> TokenRange {
        let prev = entries[(i + entries.count - 1) % entries.count].token
        return TokenRange(start: prev, end: entries[i].token)
    }

    /// The node whose token is the first at or after `token` (clockwise): the primary replica.
    package func primaryOwner(of token: Token) -> NodeID? {
        entries.isEmpty ? nil : entries[entryIndex(for: token)].node
    }

    /// The vnode range containing `token`.
    package func primaryRange(containing token: Token) -> TokenRange? {
        entries.isEmpty ? nil : range(ofEntry: entryIndex(for: token))
    }

    /// The replicas of `token` in ring order (primary first): the next `replicationFactor`
    /// distinct nodes clockwise. Fewer when the ring has fewer nodes.
    package func replicas(for token: Token, replicationFactor rf: Int) -> [NodeID] {
        entries.isEmpty ? [] : replicas(fromEntry: entryIndex(for: token), replicationFactor: rf)
    }

    func replicas(fromEntry start: Int, replicationFactor rf: Int) -> [NodeID] {
        let want = min(rf, tokensByNode.count)
        var out: [NodeID] = []
        out.reserveCapacity(want)
        var i = start
        for _ in 0..<entries.count where out.count < want {
            let n = entries[i].node
            if !out.contains(n) { out.append(n) }
            i += 1
            if i == entries.count { i = 0 }
        }
        return out
    }

    // MARK: Ownership and ranges

    /// Fraction of the ring each node is primary for (sums to 1): `nodetool status` without a
    /// keyspace.
    package func ownership() -> [NodeID: Double] {
        var out: [NodeID: Double] = [:]
        for i in entries.indices { out[entries[i].node, default: 0] += range(ofEntry: i).fraction }
        return out
    }

    /// Fraction of the ring each node holds a replica of, at `rf` (sums to min(rf, nodes)):
    /// `nodetool status keyspace`'s "effective ownership".
    package func effectiveOwnership(replicationFactor rf: Int) -> [NodeID: Double] {
        var out: [NodeID: Double] = [:]
        for i in entries.indices {
            let f = range(ofEntry: i).fraction
            for n in replicas(fromEntry: i, replicationFactor: rf) { out[n, default: 0] += f }
        }
        return out
    }

    /// Every vnode range with its replicas, in token order (what repair iterates over).
    package func rangesWithReplicas(replicationFactor rf: Int) -> [(range: TokenRange, replicas: [NodeID])] {
        entries.indices.map { (range(ofEntry: $0), replicas(fromEntry: $0, replicationFactor: rf)) }
    }

    /// The ranges `node` is primary for, in token order.
    package func primaryRanges(of node: NodeID) -> [TokenRange] {
        entries.indices.filter { entries[$0].node == node }.map { range(ofEntry: $0) }
    }

    /// The ranges `node` holds a replica of at `rf` (what it streams on decommission and compares
    /// in repair), in token order, adjacent ranges merged.
    package func replicatedRanges(of node: NodeID, replicationFactor rf: Int) -> [TokenRange] {
        let ranges = entries.indices
            .filter { replicas(fromEntry: $0, replicationFactor: rf).contains(node) }
            .map { range(ofEntry: $0) }
        return TokenRange.coalesce(ranges)
    }
}

extension TokenRange {
    /// Merges ranges where one ends exactly where the next starts (input in token order; the last
    /// may join the first across the wrap).
    static func coalesce(_ ranges: [TokenRange]) -> [TokenRange] {
        var out: [TokenRange] = []
        for r in ranges {
            if let last = out.last, last.end == r.start, !last.isFullRing {
                out[out.count - 1].end = r.end
            } else {
                out.append(r)
            }
        }
        if out.count > 1, out[out.count - 1].end == out[0].start {
            out[0].start = out[out.count - 1].start
            out.removeLast()
        }
        return out
    }
}
