import ConfabEngine

@testable import ConfabRing

/// Joins and leaves under load, as `ClusterService+Bootstrap.swift` and `+Decommission.swift` run
/// them, over the pure pieces they use: the moving node announces JOINING (with its tokens) or
/// LEAVING, every coordinator that learns it adds the pending replicas `PendingRanges` computes,
/// after the ring delay the ranges `RangeMovement` names are streamed (from the replica giving a
/// range up first, as `RangeMovement.bootstrap` orders the sources), and only then does the node
/// announce NORMAL or LEFT. Any failed stream (lost message, dead peer, ring changed) is retried
/// from the start, as the node does. The stream reads the in-memory store by token range (the
/// role `RangeStreamer` plays over the engine) and keeps every timestamp and tombstone.
extension RingSimulation {
    static let ringDelay: Int64 = 5_000_000_000
    static let streamTimeout: Int64 = 10_000_000_000

    var joinTokens: [Token] { Self.rings[params.nodes + 1]!.tokens(of: Self.nodeID(params.nodes)) }

    /// The join or leave the seed asked for has finished (or was never asked for).
    func topologySettled() -> Bool { (!params.join || joinDone) && (!params.leave || leaveDone) }

    // MARK: Join

    mutating func startJoin(_ i: Int) {
        guard !nodes[i].member else { return }
        nodes[i].member = true
        nodes[i].up = true
        nodes[i].epoch += 1
        nodes[i].gossiper = Self.gossiper(i, generation: nodes[i].generation, tokens: nil)
        nodes[i].viewCache = nil
        nodes[i].move = .joinDiscover
        queue.push(now + Int64.random(in: 0..<1_000_000_000, using: &rng), .gossipTick(i, epoch: nodes[i].epoch))
        queue.push(now + 100_000_000, .tick(i, epoch: nodes[i].epoch))
        scheduleStep(i, after: 3_000_000_000)
    }

    mutating func joinStep(_ i: Int) {
        let later = { (s: inout RingSimulation, after: Int64) in
            s.scheduleStep(i, after: after)
        }
        switch nodes[i].move {
        case .joinDiscover:
            guard !nodes[i].gossiper.liveMembers.isEmpty else { return later(&self, 1_000_000_000) }
            nodes[i].gossiper.setStatus(.joining, tokens: joinTokens)
            nodes[i].viewCache = nil
            nodes[i].move = .joinRingDelay(avoid: [])
            later(&self, Self.ringDelay)
        case .joinRingDelay(let avoid):
            let g = nodes[i].gossiper
            // One node moves at a time (ClusterService.bootstrapBlocker).
            let blocked = g.states.values.contains {
                $0.node != g.local && g.isAlive($0.node)
                    && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty && $0.node < g.local))
            }
            guard !blocked, !g.tokenRing().isEmpty else { return later(&self, Self.ringDelay) }
            nodes[i].move = .joinConfirm(startConfirm(i, expecting: .joining, expected: nil), avoid: avoid)
            later(&self, Self.confirmTimeout)
        case .joinConfirm(_, let avoid), .joinVerify(_, _, let avoid):
            // A member did not answer (down, partitioned, message lost): confirm again later.
            nodes[i].move = .joinRingDelay(avoid: avoid)
            later(&self, Self.confirmRetry)
        case .joinSettle(let generations, let avoid):
            let g = nodes[i].gossiper
            let before = g.tokenRing()
            let rf = max(1, min(Self.rf, before.nodeCount + 1))
            let fetches = try! RangeMovement.bootstrap(
                ring: before, joining: g.local, tokens: joinTokens, replicationFactor: rf)
            var bySource: [NodeID: [TokenRange]] = [:]
            for fetch in fetches {
                let live = fetch.sources.filter { g.isAlive($0) && $0 != g.local }
                guard let source = live.first(where: { !avoid.contains($0) }) ?? live.first else {
                    nodes[i].move = .joinRingDelay(avoid: avoid)
                    return later(&self, Self.ringDelay)  // no live replica holds the range: retry
                }
                bySource[source, default: []].append(fetch.range)
            }
            nodes[i].nextSession += 1
            let session = nodes[i].nextSession
            for source in bySource.keys.sorted() {
                send(.streamRequest(session, bySource[source]!), from: i, to: index(of: source))
            }
            nodes[i].move = .joinStreaming(
                session: session, waiting: Set(bySource.keys), before: before, avoid: avoid,
                generations: generations)
            later(&self, Self.streamTimeout)
        case .joinStreaming(_, let waiting, _, let avoid, _):
            // Timed out: a source died or a message was lost. Stay JOINING and stream again.
            nodes[i].move = .joinRingDelay(avoid: avoid.union(waiting))
            later(&self, Self.ringDelay)
        default:
            break
        }
    }

    mutating func streamDataArrived(session: UInt64, from: Int, at i: Int) {
        guard case .joinStreaming(let s, var waiting, let before, let avoid, let generations) = nodes[i].move,
            s == session,
            waiting.remove(nodes[from].id) != nil
        else { return }
        stats.streamed += 1
        guard waiting.isEmpty else {
            nodes[i].move = .joinStreaming(
                session: s, waiting: waiting, before: before, avoid: avoid, generations: generations)
            return
        }
        guard nodes[i].gossiper.tokenRing() == before else {
            nodes[i].move = .joinRingDelay(avoid: avoid)  // the ring changed while streaming
            scheduleStep(i, after: Self.ringDelay)
            return
        }
        // Every member must still be the process that confirmed: one that restarted may have
        // coordinated writes without this node before it learned of it again.
        nodes[i].move = .joinVerify(
            startConfirm(i, expecting: .joining, expected: generations), before: before, avoid: avoid)
        scheduleStep(i, after: Self.confirmTimeout)
    }

    mutating func finishJoin(_ i: Int) {
        nodes[i].savedTokens = joinTokens
        nodes[i].gossiper.setStatus(.normal, tokens: joinTokens)
        nodes[i].viewCache = nil
        nodes[i].move = .none
        joinDone = true
    }

    mutating func scheduleStep(_ i: Int, after: Int64, leave: Bool = false) {
        nodes[i].step += 1
        queue.push(now + after, leave ? .leaveStep(i, step: nodes[i].step) : .joinStep(i, step: nodes[i].step))
    }

    // MARK: Confirmation

    /// How long a moving node waits for the members' confirmations before asking again.
    static let confirmTimeout: Int64 = 2_000_000_000
    static let confirmRetry: Int64 = 1_000_000_000
    /// After every member confirmed, writes coordinated from an older view have finished or
    /// failed once the write timeout (2 s, `WriteCoordinator`) passed; then streaming starts.
    static let settleDelay: Int64 = 2_500_000_000

    /// Asks every member node `i` knows whether it sees `i` as `status`: all but those that left,
    /// down ones too (a member that cannot confirm holds the move back, as Cassandra's strict
    /// range movement refuses to start while a replica is down), except a LEAVING node that is
    /// down — it finished and is gone (its LEFT may never have spread) or its decommission died
    /// (`ClusterService.confirmMembers` says what that leaves open).
    mutating func startConfirm(_ i: Int, expecting status: NodeStatus, expected: [NodeID: Int64]?) -> Confirm {
        let g = nodes[i].gossiper
        let members = Set(
            g.states.values.filter {
                $0.node != g.local && $0.status != .left && ($0.status != .leaving || g.isAlive($0.node))
            }.map(\.node))
        nodes[i].nextSession += 1
        let confirm = Confirm(session: nodes[i].nextSession, waiting: members, expected: expected)
        for m in members.sorted() { send(.moveConfirmRequest(confirm.session, status), from: i, to: index(of: m)) }
        return confirm
    }

    /// Records one member's answer; a "no" or a changed generation starts the move's wait over.
    mutating func moveConfirmArrived(session: UInt64, knows: Bool, generation: Int64, from: Int, at i: Int) {
        let member = nodes[from].id
        func record(_ c: Confirm) -> Confirm?? {
            guard c.session == session, c.waiting.contains(member) else { return .some(nil) }  // stale: ignore
            if !knows || (c.expected.map { $0[member] != generation } ?? false) { return nil }  // start over
            var c = c
            c.waiting.remove(member)
            c.generations[member] = generation
            return .some(c)
        }
        switch nodes[i].move {
        case .joinConfirm(let c, let avoid):
            guard let r = record(c) else {
                nodes[i].move = .joinRingDelay(avoid: avoid)
                return scheduleStep(i, after: Self.confirmRetry)
            }
            guard let c = r else { return }
            if c.waiting.isEmpty {
                nodes[i].move = .joinSettle(generations: c.generations, avoid: avoid)
                scheduleStep(i, after: Self.settleDelay)
            } else {
                nodes[i].move = .joinConfirm(c, avoid: avoid)
            }
        case .joinVerify(let c, let before, let avoid):
            guard let r = record(c) else {
                nodes[i].move = .joinRingDelay(avoid: avoid)
                return scheduleStep(i, after: Self.confirmRetry)
            }
            guard let c = r else { return }
            if c.waiting.isEmpty {
                guard nodes[i].gossiper.tokenRing() == before else {
                    nodes[i].move = .joinRingDelay(avoid: avoid)
                    return scheduleStep(i, after: Self.ringDelay)
                }
                finishJoin(i)
            } else {
                nodes[i].move = .joinVerify(c, before: before, avoid: avoid)
            }
        case .leaveConfirm(let c):
            guard let r = record(c) else {
                nodes[i].move = .leaveRingDelay
                return scheduleStep(i, after: Self.confirmRetry, leave: true)
            }
            guard let c = r else { return }
            if c.waiting.isEmpty {
                nodes[i].move = .leaveSettle(generations: c.generations)
                scheduleStep(i, after: Self.settleDelay, leave: true)
            } else {
                nodes[i].move = .leaveConfirm(c)
            }
        case .leaveVerify(let c, let before):
            guard let r = record(c) else { return abandonLeave(i) }
            guard let c = r else { return }
            if c.waiting.isEmpty {
                guard nodes[i].gossiper.tokenRing().nodes == before else { return abandonLeave(i) }
                announceLeft(i)
            } else {
                nodes[i].move = .leaveVerify(c, before: before)
            }
        default:
            break
        }
    }

    // MARK: Leave

    mutating func startLeave(_ i: Int) {
        guard nodes[i].member, !nodes[i].left else { return }
        let retry = { (s: inout RingSimulation) in s.queue.push(s.now + 3_000_000_000, .leave(i)) }
        guard nodes[i].up, case .none = nodes[i].move, let tokens = nodes[i].savedTokens else { return retry(&self) }
        let g = nodes[i].gossiper
        let ring = g.tokenRing()
        // ClusterService.decommission's checks; and (the scenario's choice) the ring keeps RF nodes.
        let otherMoving = g.states.values.contains {
            $0.node != g.local && g.isAlive($0.node)
                && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty))
        }
        let targets = RangeMovement.decommission(
            ring: ring, leaving: g.local, replicationFactor: max(1, min(Self.rf, ring.nodeCount))
        )
        .flatMap(\.targets)
        guard g.localState.status == .normal, ring.contains(g.local), ring.nodeCount >= 2, !tokens.isEmpty,
            !otherMoving,
            targets.allSatisfy({ g.isAlive($0) }), trueRing().nodeCount > Self.rf
        else { return retry(&self) }
        nodes[i].gossiper.setStatus(.leaving)
        nodes[i].viewCache = nil
        nodes[i].move = .leaveRingDelay
        scheduleStep(i, after: Self.ringDelay, leave: true)
    }

    mutating func leaveStep(_ i: Int) {
        switch nodes[i].move {
        case .leaveRingDelay:
            nodes[i].move = .leaveConfirm(startConfirm(i, expecting: .leaving, expected: nil))
            scheduleStep(i, after: Self.confirmTimeout, leave: true)
        case .leaveConfirm:
            nodes[i].move = .leaveRingDelay  // a member did not answer: ask again later
            scheduleStep(i, after: Self.confirmRetry, leave: true)
        case .leaveSettle(let generations):
            let before = nodes[i].gossiper.tokenRing()
            let handoffs = RangeMovement.decommission(
                ring: before, leaving: nodes[i].id,
                replicationFactor: max(1, min(Self.rf, before.nodeCount)))
            var byTarget: [NodeID: [TokenRange]] = [:]
            for h in handoffs {
                for t in h.targets { byTarget[t, default: []].append(h.range) }
            }
            nodes[i].nextSession += 1
            let session = nodes[i].nextSession
            for target in byTarget.keys.sorted() {
                send(.streamPush(session, rangeData(byTarget[target]!, at: i)), from: i, to: index(of: target))
            }
            nodes[i].move = .leaveStreaming(
                session: session, waiting: Set(byTarget.keys), before: before.nodes, generations: generations)
            if byTarget.isEmpty {
                verifyLeave(i, before: before.nodes, generations: generations)
            } else {
                scheduleStep(i, after: Self.streamTimeout, leave: true)
            }
        case .leaveStreaming, .leaveVerify:
            abandonLeave(i)  // timed out
        case .leftWait:
            // The news had the ring delay to spread: the node shuts down for good, taking the
            // hints it still holds with it (as the node does; the log counts them).
            nodes[i].up = false
            nodes[i].left = true
            nodes[i].epoch += 1
            nodes[i].writes = [:]
            nodes[i].reads = [:]
            nodes[i].wire = SimWire(time: time)
            leaveDone = true
        default:
            break
        }
    }

    mutating func streamAckArrived(session: UInt64, from: Int, at i: Int) {
        guard case .leaveStreaming(let s, var waiting, let before, let generations) = nodes[i].move, s == session,
            waiting.remove(nodes[from].id) != nil
        else { return }
        stats.streamed += 1
        nodes[i].move = .leaveStreaming(session: s, waiting: waiting, before: before, generations: generations)
        guard waiting.isEmpty else { return }
        guard nodes[i].gossiper.tokenRing().nodes == before else { return abandonLeave(i) }
        verifyLeave(i, before: before, generations: generations)
    }

    mutating func verifyLeave(_ i: Int, before: [NodeID], generations: [NodeID: Int64]) {
        nodes[i].move = .leaveVerify(startConfirm(i, expecting: .leaving, expected: generations), before: before)
        scheduleStep(i, after: Self.confirmTimeout, leave: true)
    }

    mutating func announceLeft(_ i: Int) {
        nodes[i].gossiper.setStatus(.left)
        nodes[i].viewCache = nil
        nodes[i].move = .leftWait
        scheduleStep(i, after: Self.ringDelay, leave: true)
    }

    /// A failed decommission: NORMAL again with its data, and the operator runs it again.
    mutating func abandonLeave(_ i: Int) {
        nodes[i].gossiper.setStatus(.normal, tokens: nodes[i].savedTokens)
        nodes[i].viewCache = nil
        nodes[i].move = .none
        queue.push(now + 5_000_000_000, .leave(i))
    }

    // MARK: Streaming

    /// Node `i`'s data in `ranges`, one mutation per partition with its header, rows, timestamps
    /// and tombstones.
    func rangeData(_ ranges: [TokenRange], at i: Int) -> [Mutation] {
        nodes[i].store.keys.sorted { compareBytes($0, $1) < 0 }.compactMap { key in
            let token = Token(partitionKey: key)
            guard ranges.contains(where: { $0.contains(token) }), let r = nodes[i].store[key] else { return nil }
            return Mutation(table: ChatMessages.table, partitionKey: key, header: r.header, rows: r.rows)
        }
    }
}
