/// When a JOINING node picks its tokens (the rule behind `ClusterService`'s join step, pure so it
/// is tested without a network).
///
/// A node that is not a seed never forms a ring of its own: if no seed answers it stays JOINING,
/// serving nothing, and says why (Cassandra's non-seed nodes refuse to
/// start alone too). Before this rule a node started with the wrong cluster secret — whose seeds
/// refuse its authentication, so none "answers" — became a one-node ring after 30 intervals and
/// accepted writes that no replica of the real ring would ever hold.
package enum JoinDecision: Equatable, Sendable {
    /// Keep gossiping.
    case wait
    /// Keep gossiping: no seed has answered for `aloneAfterIntervals` and this node is not one
    /// (the shell says so in its log, now and then).
    case waitForASeed
    /// Allocate tokens against the ring as seen now.
    case join
    /// A seed that heard no other seed: allocate tokens for a ring of its own.
    case formAlone

    /// Intervals a joiner with a live peer waits for gossip to settle, and a seed waits for the
    /// other seeds before starting the ring alone.
    package static let settleIntervals = 3
    package static let aloneAfterIntervals = 30

    /// - Parameters:
    ///   - isSeed: this node's address is among the configured seeds.
    ///   - otherSeeds: configured seeds other than this node.
    ///   - hasLivePeers: gossip has heard a live member.
    ///   - earlierJoiners: JOINING nodes with a smaller id (they pick tokens first).
    ///   - intervalsElapsed: whole gossip intervals since the join started.
    package static func decide(
        isSeed: Bool, otherSeeds: Int, hasLivePeers: Bool, earlierJoiners: Int, intervalsElapsed: Int
    ) -> JoinDecision {
        if otherSeeds == 0 { return .join }
        if hasLivePeers {
            let settled =
                intervalsElapsed >= settleIntervals && (earlierJoiners == 0 || intervalsElapsed >= aloneAfterIntervals)
            return settled ? .join : .wait
        }
        guard intervalsElapsed >= aloneAfterIntervals else { return .wait }
        return isSeed ? .formAlone : .waitForASeed
    }
}
