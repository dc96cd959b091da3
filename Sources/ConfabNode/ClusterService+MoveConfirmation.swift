import ConfabRing
import ConfabWire

/// Before a joining or leaving node streams, every member must have seen the move; a fixed ring
/// delay only makes that likely. A coordinator that has not yet seen a joiner as JOINING writes
/// without it, and if that write reaches the source after the source streamed the range, the
/// joiner never gets it: a later QUORUM read of the joiner and a replica that missed the write
/// misses an acknowledged write (ring simulation seed 391, 10 % message loss).
///
/// So a move:
/// 1. asks every member for its ring status until each reports this node as JOINING with these
///    tokens (or LEAVING), and records the gossip generation each reports for itself;
/// 2. waits the write timeout, so that writes coordinated from an older view have finished or
///    failed — an acknowledged one has reached every replica that acknowledged it;
/// 3. streams;
/// 4. asks again: every member must still see the move *and* report the same generation. A member
///    that restarted in between may have coordinated writes before it learned the move again
///    (its saved ring view is written after the fact), so the stream is repeated.
///
/// Which members: every member gossip knows except those that left, down ones included (a
/// member that cannot confirm holds the move back, as Cassandra's strict range movement refuses
/// to start while a replica is down), except a LEAVING member that is down: it either finished
/// and is gone for good (its LEFT may never have spread) or its decommission died. What that
/// leaves open: such a member, restarted as NORMAL from a saved view older than the move, may
/// coordinate writes that miss the moving node until gossip reaches it; repair mends them.
extension ClusterService {
    /// The members whose confirmation a move of this node needs.
    func membersToConfirm() -> [NodeID] {
        guard let g = gossiper else { return [] }
        let alive = aliveSet(at: now())
        return g.states.values.filter {
            $0.node != g.local && $0.status != .left && ($0.status != .leaving || alive.contains($0.node))
        }.map(\.node).sorted()
    }

    /// Asks every member whether it sees this node as `status` (with exactly `tokens` when
    /// joining) and returns the generation each reports for itself. With `expected`, every
    /// member must also still report that generation. Throws naming who did not confirm.
    func confirmMove(_ status: NodeStatus, tokens: [Token]?, expected: [NodeID: Int64]? = nil) async throws -> [NodeID:
        Int64]
    {
        guard let local = gossiper?.local else { throw BootstrapError("this node is not running its cluster service") }
        let members = membersToConfirm()
        let messenger = self.messenger
        let timeout = configuration.writeTimeout
        let wanted = status.rawValue.lowercased()
        let wantedTokens = tokens.map { $0.map(\.value).sorted() }
        let answers = await withTaskGroup(of: (NodeID, Result<Int64, BootstrapError>).self) { group in
            for member in members {
                group.addTask {
                    do {
                        let reply = try await messenger.request(.status, to: member.address, timeout: timeout)
                        guard case .statusResponse(let s) = reply else {
                            return (
                                member, .failure(BootstrapError("\(member.address) answered Status with \(reply.type)"))
                            )
                        }
                        guard let me = s.nodes.first(where: { $0.id == local.id }), me.state == wanted,
                            wantedTokens.map({ $0 == me.tokenValues.sorted() }) ?? true
                        else {
                            return (
                                member,
                                .failure(BootstrapError("\(member.address) does not see this node as \(wanted) yet"))
                            )
                        }
                        let generation = s.nodes.first { $0.id == member.id }?.generation ?? 0
                        return (member, .success(generation))
                    } catch {
                        return (member, .failure(BootstrapError("\(member.address) did not answer Status: \(error)")))
                    }
                }
            }
            var out: [NodeID: Result<Int64, BootstrapError>] = [:]
            for await (member, result) in group { out[member] = result }
            return out
        }
        var generations: [NodeID: Int64] = [:]
        var refusals: [String] = []
        for member in members {
            switch answers[member]! {
            case .success(let generation):
                if let expected, let before = expected[member], before != generation {
                    refusals.append("\(member.address) restarted (generation \(before) → \(generation))")
                } else if let expected, expected[member] == nil {
                    refusals.append("\(member.address) was not asked before streaming")
                } else {
                    generations[member] = generation
                }
            case .failure(let e):
                refusals.append(e.description)
            }
        }
        guard refusals.isEmpty else {
            throw BootstrapError(
                "not every member confirmed this node as \(wanted): " + refusals.joined(separator: "; "))
        }
        return generations
    }

    /// `confirmMove` asked again every gossip interval until every member confirms or
    /// `patience` ran out (gossip may still be spreading the move); then its last error.
    func confirmMovePatiently(_ status: NodeStatus, tokens: [Token]?, patience: Duration) async throws -> [NodeID:
        Int64]
    {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                return try await confirmMove(status, tokens: tokens)
            } catch let error as BootstrapError {
                guard ContinuousClock.now + configuration.gossipInterval < deadline else { throw error }
                logger.info("move: waiting for every member to see it", metadata: ["reason": "\(error)"])
                try await Task.sleep(for: configuration.gossipInterval)
            }
        }
    }

    /// Step 2 above: writes coordinated from a view without the move have finished or failed.
    func settleAfterConfirmation() async throws {
        try await Task.sleep(for: configuration.writeTimeout + .milliseconds(500))
    }
}
