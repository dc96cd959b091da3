/// What a moving node knows of the ring when its join or leave takes a step: the gossiped
/// states, its failure detector's verdict and the token ring of the owners. The shell builds one
/// from its `Gossiper` for each call into `Bootstrap`.
package struct MoveView {
    package var local: NodeID
    package var states: [EndpointState]
    package var isAlive: (NodeID) -> Bool
    package var ring: TokenRing

    package init(local: NodeID, states: [EndpointState], isAlive: @escaping (NodeID) -> Bool, ring: TokenRing) {
        self.local = local
        self.states = states.sorted { $0.node < $1.node }
        self.isAlive = isAlive
        self.ring = ring
    }

    /// The members whose confirmation a move of this node needs: every member gossip knows except
    /// those that left, down ones included (one that cannot confirm holds the move back, as
    /// Cassandra's strict range movement refuses to start while a replica is down) — except a
    /// LEAVING member that is down: it finished and is gone (its LEFT may never have spread) or its
    /// decommission died. What that leaves open: such a member, restarted as NORMAL from a saved
    /// view older than the move, may coordinate writes that miss the moving node until gossip
    /// reaches it; repair mends them.
    package var membersToConfirm: [NodeID] {
        states.filter { $0.node != local && $0.status != .left && ($0.status != .leaving || isAlive($0.node)) }
            .map(\.node)
    }

    /// The live moving node a joiner must wait for, if any. One node joins or leaves at a time, but
    /// two joiners that each waited for the other would stay JOINING for good (both announced
    /// tokens before hearing of each other), so among live JOINING nodes with tokens the one with
    /// the smallest id goes first; a LEAVING node always goes first.
    package var bootstrapBlocker: EndpointState? {
        states.filter {
            $0.node != local && isAlive($0.node)
                && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty && $0.node < local))
        }.min { $0.node < $1.node }
    }
}
