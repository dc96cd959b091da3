extension Gossiper {
    /// The token ring as gossip describes it: every node (this one included) in NORMAL or LEAVING
    /// state with tokens. JOINING nodes are not owners yet (they are pending replicas), LEFT nodes
    /// no longer are. Conflicting tokens go to the node with the smaller id (deterministic on
    /// every node; the loser's tokens are skipped).
    package func tokenRing() -> TokenRing {
        var ring = TokenRing()
        for state in states.values.sorted(by: { $0.node < $1.node }) {
            guard let s = state.status, s == .normal || s == .leaving else { continue }
            let tokens = state.tokens
            guard !tokens.isEmpty else { continue }
            let owned = Set(ring.entries.map(\.token))
            try? ring.add(state.node, tokens: tokens.filter { !owned.contains($0) })
        }
        return ring
    }

    /// Nodes announcing `status`, sorted by id (this node included).
    package func nodes(withStatus status: NodeStatus) -> [NodeID] {
        states.values.filter { $0.status == status }.map(\.node).sorted()
    }
}
