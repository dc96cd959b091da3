import ConfabEngine

/// A node leaving the ring and handing its data to the nodes that gain its ranges (Cassandra's
/// `nodetool decommission`, `StorageService.unbootstrap`), as a pure state machine: the node
/// (`ClusterService+Decommission.swift`) and the ring simulation carry out its actions.
///
/// 1. Refuse (`refusal(view:…)`) unless this node is NORMAL, not alone, no other node is joining
///    or leaving, and every node that gains a range is alive.
/// 2. Announce LEAVING. This node stays an owner (reads and writes still use it), and coordinators
///    add the gaining nodes as pending replicas for writes (`PendingRanges`).
/// 3. After the ring delay, ask every member to confirm it sees this node LEAVING (again every
///    `confirmInterval`, for at most `confirmPatience`), then wait `settle` (the write timeout),
///    as `Bootstrap` does and for the same reason.
/// 4. Stream every range it replicates (`RangeMovement.decommission`) to each gaining node.
/// 5. Every member must confirm again with the same generation, and the owners must be the ones
///    the stream was planned on.
/// 6. Announce LEFT (the shell records it in the data directory), wait `leftWait` so the news
///    spreads, then shut down.
///
/// A failure after step 2 announces NORMAL again — nothing is lost, the node keeps serving — and
/// ends the machine with `.failed`; the operator runs decommission again.
package struct Decommission: Sendable {
    package struct Timing: Sendable, Hashable {
        package var ringDelay: Duration
        package var confirmInterval: Duration
        package var confirmTimeout: Duration
        /// How long members may take, in all, to see the move before the decommission fails.
        package var confirmPatience: Duration
        package var settle: Duration
        package var streamTimeout: Duration
        /// After LEFT, before shutting down.
        package var leftWait: Duration

        package init(
            ringDelay: Duration, confirmInterval: Duration, confirmTimeout: Duration, confirmPatience: Duration,
            settle: Duration, streamTimeout: Duration, leftWait: Duration
        ) {
            self.ringDelay = ringDelay
            self.confirmInterval = confirmInterval
            self.confirmTimeout = confirmTimeout
            self.confirmPatience = confirmPatience
            self.settle = settle
            self.streamTimeout = streamTimeout
            self.leftWait = leftWait
        }
    }

    /// One gaining node's share: its ranges of the keyspaces replicated `replicationFactor` times.
    package struct Handoff: Hashable, Sendable {
        package var target: NodeID
        package var replicationFactor: Int
        package var ranges: [TokenRange]
    }

    package enum Refusal: Hashable, Sendable {
        /// This node cannot leave as it is (not NORMAL, alone).
        case invalid(String)
        /// It may later: another node is moving, or a gaining node is down.
        case unavailable(String)
    }

    package enum Action: Sendable {
        case announceLeaving
        /// Ask each member whether it sees this node LEAVING; answer each with `onConfirm`.
        case confirm(round: UInt64, members: [NodeID])
        /// Stream each handoff's ranges to its target; answer each target once with
        /// `onStreamDone` or `onStreamFailed`.
        case stream(round: UInt64, [Handoff])
        /// Gossip LEFT and record the decommission in the data directory.
        case announceLeft
        /// The news had time to spread: shut the node down.
        case shutDown
        /// The decommission failed: gossip NORMAL again (with the node's tokens) and report `reason`.
        case revert(reason: String)
        case note(String)
    }

    enum Phase: Sendable {
        case waiting(until: RingInstant)
        case confirming(round: UInt64, waiting: Set<NodeID>, generations: [NodeID: Int64], deadline: RingInstant)
        case settling(until: RingInstant, generations: [NodeID: Int64])
        case streaming(
            round: UInt64, waiting: Set<NodeID>, owners: [NodeID], generations: [NodeID: Int64], deadline: RingInstant)
        case verifying(
            round: UInt64, waiting: Set<NodeID>, expected: [NodeID: Int64], owners: [NodeID], deadline: RingInstant)
        case left(until: RingInstant)
        case finished
    }

    package let replicationFactors: [Int]
    package let timing: Timing
    private(set) var phase: Phase = .waiting(until: .zero)
    private var confirmGiveUp: RingInstant = .zero
    private var lastRound: UInt64 = 0

    package init(replicationFactors: [Int], timing: Timing) {
        self.replicationFactors = Array(Set(replicationFactors)).sorted()
        self.timing = timing
    }

    package var isFinished: Bool { if case .finished = phase { true } else { false } }

    /// LEFT was announced: the node is gone for good, even if it dies before shutting down.
    package var hasLeft: Bool {
        switch phase {
        case .left: true
        case .finished: lastAction == .shutDown
        default: false
        }
    }
    private var lastAction: Ending?
    enum Ending: Hashable, Sendable { case shutDown, reverted }

    /// Why this node cannot start leaving now, or nil.
    package static func refusal(view: MoveView, isNormal: Bool, replicationFactors: [Int]) -> Refusal? {
        guard isNormal, view.ring.contains(view.local) else {
            return .invalid("only a NORMAL node that owns tokens can be decommissioned")
        }
        guard view.ring.nodeCount >= 2 else {
            return .invalid("this is the ring's only node: there is no node to hand its data to; stop it instead")
        }
        if let other = view.states.first(where: {
            $0.node != view.local && view.isAlive($0.node)
                && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty))
        }) {
            return .unavailable(
                "\(other.node.address) is \(other.status?.rawValue ?? "moving"); one node joins or leaves at a time, run decommission again when it is done"
            )
        }
        let down = Set(
            replicationFactors.flatMap {
                RangeMovement.decommission(
                    ring: view.ring, leaving: view.local, replicationFactor: max(1, min($0, view.ring.nodeCount)))
            }.flatMap(\.targets)
        ).filter { !view.isAlive($0) }.sorted()
        guard down.isEmpty else {
            return .unavailable(
                "\(down.map { "\($0.address)" }.joined(separator: ", ")) must receive ranges from this node but \(down.count == 1 ? "is" : "are") down; bring \(down.count == 1 ? "it" : "them") back and run decommission again"
            )
        }
        return nil
    }

    package mutating func start(now: RingInstant) -> [Action] {
        phase = .waiting(until: now + timing.ringDelay)
        confirmGiveUp = now + timing.ringDelay + timing.confirmPatience
        return [.announceLeaving]
    }

    package mutating func onTick(now: RingInstant, view: MoveView) -> [Action] {
        switch phase {
        case .waiting(let until) where now >= until:
            return beginConfirm(now: now, view: view)
        case .confirming(_, let waiting, _, let deadline) where now >= deadline:
            return confirmFailed(now: now, "\(waiting.count) member(s) did not answer in time")
        case .settling(let until, let generations) where now >= until:
            return beginStream(now: now, view: view, generations: generations)
        case .streaming(_, let waiting, _, _, let deadline) where now >= deadline:
            return fail(
                "streams to \(waiting.sorted().map { "\($0.address)" }.joined(separator: ", ")) did not finish in time")
        case .verifying(_, let waiting, _, _, let deadline) where now >= deadline:
            return fail("\(waiting.count) member(s) did not confirm again in time")
        case .left(let until) where now >= until:
            phase = .finished
            lastAction = .shutDown
            return [.shutDown]
        default:
            return []
        }
    }

    package mutating func onConfirm(
        round: UInt64, member: NodeID, _ answer: Result<Int64, MoveRefusal>, now: RingInstant, view: MoveView
    ) -> [Action] {
        switch phase {
        case .confirming(let r, var waiting, var generations, let deadline) where r == round:
            guard waiting.remove(member) != nil else { return [] }
            switch answer {
            case .failure(let refusal): return confirmFailed(now: now, refusal.reason)
            case .success(let generation): generations[member] = generation
            }
            guard waiting.isEmpty else {
                phase = .confirming(round: r, waiting: waiting, generations: generations, deadline: deadline)
                return []
            }
            phase = .settling(until: now + timing.settle, generations: generations)
            return []
        case .verifying(let r, var waiting, let expected, let owners, let deadline) where r == round:
            guard waiting.remove(member) != nil else { return [] }
            switch answer {
            case .failure(let refusal): return fail("not every member confirmed again: \(refusal.reason)")
            case .success(let generation) where expected[member] != generation:
                return fail(
                    "\(member.address) restarted while this node streamed (generation \(expected[member].map(String.init) ?? "none") → \(generation))"
                )
            case .success: break
            }
            guard waiting.isEmpty else {
                phase = .verifying(round: r, waiting: waiting, expected: expected, owners: owners, deadline: deadline)
                return []
            }
            guard view.ring.nodes == owners else {
                return fail("the ring changed while streaming (a node joined or left)")
            }
            phase = .left(until: now + timing.leftWait)
            return [.announceLeft]
        default:
            return []
        }
    }

    package mutating func onStreamDone(round: UInt64, target: NodeID, now: RingInstant, view: MoveView) -> [Action] {
        guard case .streaming(let r, var waiting, let owners, let generations, let deadline) = phase, r == round,
            waiting.remove(target) != nil
        else { return [] }
        guard waiting.isEmpty else {
            phase = .streaming(round: r, waiting: waiting, owners: owners, generations: generations, deadline: deadline)
            return []
        }
        guard view.ring.nodes == owners else { return fail("the ring changed while streaming (a node joined or left)") }
        return beginVerify(now: now, view: view, expected: generations, owners: owners)
    }

    package mutating func onStreamFailed(round: UInt64, target: NodeID, reason: String) -> [Action] {
        guard case .streaming(let r, let waiting, _, _, _) = phase, r == round, waiting.contains(target) else {
            return []
        }
        return fail("streaming to \(target.address) failed: \(reason)")
    }

    // MARK: Steps

    private mutating func nextRound() -> UInt64 {
        lastRound += 1
        return lastRound
    }

    private mutating func fail(_ reason: String) -> [Action] {
        phase = .finished
        lastAction = .reverted
        return [.revert(reason: reason)]
    }

    /// Members may still be learning of the move: ask again shortly, until the patience ran out.
    private mutating func confirmFailed(now: RingInstant, _ reason: String) -> [Action] {
        guard now + timing.confirmInterval < confirmGiveUp else {
            return fail("not every member confirmed this node as leaving: \(reason)")
        }
        phase = .waiting(until: now + timing.confirmInterval)
        return [.note("decommission: waiting for every member to see it: \(reason)")]
    }

    private mutating func beginConfirm(now: RingInstant, view: MoveView) -> [Action] {
        let members = view.membersToConfirm
        let round = nextRound()
        guard !members.isEmpty else {
            phase = .settling(until: now + timing.settle, generations: [:])
            return []
        }
        phase = .confirming(
            round: round, waiting: Set(members), generations: [:], deadline: now + timing.confirmTimeout)
        return [.confirm(round: round, members: members)]
    }

    private mutating func beginStream(now: RingInstant, view: MoveView, generations: [NodeID: Int64]) -> [Action] {
        let before = view.ring
        var handoffs: [Handoff] = []
        for rf in replicationFactors {
            var byTarget: [NodeID: [TokenRange]] = [:]
            for h in RangeMovement.decommission(
                ring: before, leaving: view.local, replicationFactor: max(1, min(rf, before.nodeCount)))
            {
                for t in h.targets { byTarget[t, default: []].append(h.range) }
            }
            for target in byTarget.keys.sorted() {
                handoffs.append(Handoff(target: target, replicationFactor: rf, ranges: byTarget[target]!))
            }
        }
        let targets = Set(handoffs.map(\.target))
        guard !targets.isEmpty else {
            return beginVerify(now: now, view: view, expected: generations, owners: before.nodes)
        }
        let round = nextRound()
        phase = .streaming(
            round: round, waiting: targets, owners: before.nodes, generations: generations,
            deadline: now + timing.streamTimeout)
        return [.stream(round: round, handoffs)]
    }

    private mutating func beginVerify(
        now: RingInstant, view: MoveView, expected: [NodeID: Int64], owners: [NodeID]
    ) -> [Action] {
        let members = view.membersToConfirm
        if let unasked = members.first(where: { expected[$0] == nil }) {
            return fail("\(unasked.address) was not asked before streaming")
        }
        guard !members.isEmpty else {
            phase = .left(until: now + timing.leftWait)
            return [.announceLeft]
        }
        let round = nextRound()
        phase = .verifying(
            round: round, waiting: Set(members), expected: expected, owners: owners,
            deadline: now + timing.confirmTimeout)
        return [.confirm(round: round, members: members)]
    }
}
