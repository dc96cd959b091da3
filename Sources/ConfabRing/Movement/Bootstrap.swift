import ConfabEngine

/// A new node joining a ring with NORMAL members fetches its data before it serves reads
/// (Cassandra's `StorageService.bootstrap` with `RangeStreamer`), as a pure state machine: the
/// node (`ClusterService+Bootstrap.swift`) and the ring simulation carry out its actions and feed
/// it the answers and clock ticks.
///
/// 1. Announce JOINING with the tokens. From the moment a coordinator learns them it sends this
///    node every write for the ranges it will replicate, as a pending replica (`PendingRanges`);
///    reads still go to the old replicas only.
/// 2. After the ring delay, and once no other node is moving (`MoveView.bootstrapBlocker`), ask
///    every member (`MoveView.membersToConfirm`) whether it sees this node JOINING with these
///    tokens, recording the gossip generation each reports for itself. A fixed delay only makes
///    that likely: a coordinator that has not seen the joiner writes without it, and if that write
///    reaches the source after the source streamed the range, the joiner never gets it (ring
///    simulation seed 391, 10 % message loss).
/// 3. Wait `settle` (the write timeout and a margin), so writes coordinated from an older view
///    have finished or failed — an acknowledged one has reached every replica that acknowledged.
/// 4. Stream: `RangeMovement.bootstrap` names each range's source, the replica giving it up (any
///    old replica only when none does); a source that failed an attempt is avoided while another
///    is live. Sources work in parallel; mutations keep their timestamps, so a retry is harmless.
/// 5. Ask every member again: each must still see the move *and* report the same generation (one
///    that restarted meanwhile may have coordinated writes before it learned the move again), and
///    the ring must be the one the stream was planned on; else stream again.
/// 6. Complete: make the data durable, persist the tokens, announce NORMAL.
///
/// Any failure (a source dies or times out, a member does not confirm, another node starts moving,
/// the ring changes) keeps the node JOINING — it never becomes NORMAL with missing data — and the
/// attempt is retried with the same tokens after the ring delay (a refused confirmation after
/// `confirmInterval`).
package struct Bootstrap: Sendable {
    package struct Timing: Sendable, Hashable {
        package var ringDelay: Duration
        /// Between confirmation rounds when a member did not confirm yet.
        package var confirmInterval: Duration
        /// How long a confirmation round waits for every answer.
        package var confirmTimeout: Duration
        /// After every member confirmed, before streaming (step 3).
        package var settle: Duration
        /// How long every source may take to finish its stream.
        package var streamTimeout: Duration

        package init(
            ringDelay: Duration, confirmInterval: Duration, confirmTimeout: Duration, settle: Duration,
            streamTimeout: Duration
        ) {
            self.ringDelay = ringDelay
            self.confirmInterval = confirmInterval
            self.confirmTimeout = confirmTimeout
            self.settle = settle
            self.streamTimeout = streamTimeout
        }
    }

    /// One source's share of a stream: its ranges for the keyspaces replicated `replicationFactor`
    /// times (the shell asks for every table of those keyspaces).
    package struct StreamJob: Hashable, Sendable {
        package var source: NodeID
        package var replicationFactor: Int
        package var ranges: [TokenRange]
    }

    package enum Action: Sendable {
        /// Gossip JOINING with these tokens.
        case announceJoining([Token])
        /// Ask each member whether it sees this node JOINING with the tokens; answer each with
        /// `onConfirm(round:…)`.
        case confirm(round: UInt64, members: [NodeID])
        /// Have each job's source stream its ranges to this node; answer each source once with
        /// `onStreamDone` or `onStreamFailed`.
        case stream(round: UInt64, [StreamJob])
        /// Flush, persist the tokens and announce NORMAL; answer a failure with `onCompleteFailed`.
        case complete([Token])
        /// Something worth a log line (why the join waits or retries).
        case note(String)
    }

    enum Phase: Sendable {
        case waiting(until: RingInstant)
        case confirming(round: UInt64, waiting: Set<NodeID>, generations: [NodeID: Int64], deadline: RingInstant)
        case settling(until: RingInstant, generations: [NodeID: Int64])
        case streaming(
            round: UInt64, waiting: Set<NodeID>, before: TokenRing, generations: [NodeID: Int64],
            deadline: RingInstant)
        case verifying(
            round: UInt64, waiting: Set<NodeID>, expected: [NodeID: Int64], before: TokenRing, deadline: RingInstant)
        case completing
        case done
    }

    package let tokens: [Token]
    package let replicationFactors: [Int]
    package let timing: Timing
    private(set) var phase: Phase
    /// Sources that failed an attempt: used again only when no other source is live.
    package private(set) var avoid: Set<NodeID> = []
    private var lastRound: UInt64 = 0
    /// Complete stream attempts so far.
    package private(set) var attempts = 0

    package init(tokens: [Token], replicationFactors: [Int], timing: Timing) {
        self.tokens = tokens
        self.replicationFactors = Array(Set(replicationFactors)).sorted()
        self.timing = timing
        self.phase = .waiting(until: .zero)
    }

    package var isDone: Bool { if case .done = phase { true } else { false } }

    package mutating func start(now: RingInstant) -> [Action] {
        phase = .waiting(until: now + timing.ringDelay)
        return [.announceJoining(tokens)]
    }

    /// The clock moved: starts the next step when its wait is over, or fails the one that ran out
    /// of time. Shells call it often (every 100–200 ms); it does nothing in between.
    package mutating func onTick(now: RingInstant, view: MoveView) -> [Action] {
        switch phase {
        case .waiting(let until) where now >= until:
            return beginConfirm(now: now, view: view)
        case .confirming(_, let waiting, _, let deadline) where now >= deadline:
            return retry(now: now, after: timing.confirmInterval, "\(waiting.count) member(s) did not answer in time")
        case .settling(let until, let generations) where now >= until:
            return beginStream(now: now, view: view, generations: generations)
        case .streaming(_, let waiting, _, _, let deadline) where now >= deadline:
            avoid.formUnion(waiting)
            return retry(
                now: now, after: timing.ringDelay,
                "streams from \(waiting.sorted().map { "\($0.address)" }.joined(separator: ", ")) did not finish in time"
            )
        case .verifying(_, let waiting, _, _, let deadline) where now >= deadline:
            return retry(now: now, after: timing.confirmInterval, "\(waiting.count) member(s) did not answer in time")
        default:
            return []
        }
    }

    /// A member's answer to a confirmation round: the generation it reports for itself, or why
    /// it does not confirm (it does not see the move yet, it could not be reached).
    package mutating func onConfirm(
        round: UInt64, member: NodeID, _ answer: Result<Int64, MoveRefusal>, now: RingInstant, view: MoveView
    ) -> [Action] {
        switch phase {
        case .confirming(let r, var waiting, var generations, let deadline) where r == round:
            guard waiting.remove(member) != nil else { return [] }
            switch answer {
            case .failure(let refusal): return retry(now: now, after: timing.confirmInterval, refusal.reason)
            case .success(let generation): generations[member] = generation
            }
            guard waiting.isEmpty else {
                phase = .confirming(round: r, waiting: waiting, generations: generations, deadline: deadline)
                return []
            }
            phase = .settling(until: now + timing.settle, generations: generations)
            return []
        case .verifying(let r, var waiting, let expected, let before, let deadline) where r == round:
            guard waiting.remove(member) != nil else { return [] }
            switch answer {
            case .failure(let refusal): return retry(now: now, after: timing.confirmInterval, refusal.reason)
            case .success(let generation) where expected[member] != generation:
                return retry(
                    now: now, after: timing.confirmInterval,
                    "\(member.address) restarted while this node streamed (generation \(expected[member].map(String.init) ?? "none") → \(generation))"
                )
            case .success: break
            }
            guard waiting.isEmpty else {
                phase = .verifying(round: r, waiting: waiting, expected: expected, before: before, deadline: deadline)
                return []
            }
            guard view.ring == before else {
                return retry(
                    now: now, after: timing.ringDelay, "the ring changed while streaming (a node joined or left)")
            }
            phase = .completing
            return [.complete(tokens)]
        default:
            return []
        }
    }

    /// A source finished streaming its jobs of `round`.
    package mutating func onStreamDone(round: UInt64, source: NodeID, now: RingInstant, view: MoveView) -> [Action] {
        guard case .streaming(let r, var waiting, let before, let generations, let deadline) = phase, r == round,
            waiting.remove(source) != nil
        else { return [] }
        guard waiting.isEmpty else {
            phase = .streaming(round: r, waiting: waiting, before: before, generations: generations, deadline: deadline)
            return []
        }
        guard view.ring == before else {
            return retry(now: now, after: timing.ringDelay, "the ring changed while streaming (a node joined or left)")
        }
        return beginVerify(now: now, view: view, expected: generations, before: before)
    }

    package mutating func onStreamFailed(
        round: UInt64, source: NodeID, reason: String, now: RingInstant
    ) -> [Action] {
        guard case .streaming(let r, let waiting, _, _, _) = phase, r == round, waiting.contains(source) else {
            return []
        }
        avoid.insert(source)
        return retry(now: now, after: timing.ringDelay, "streaming from \(source.address) failed: \(reason)")
    }

    /// Completing failed (the flush or the tokens file): stay JOINING and stream again.
    package mutating func onCompleteFailed(reason: String, now: RingInstant) -> [Action] {
        guard case .completing = phase else { return [] }
        return retry(now: now, after: timing.ringDelay, "completing failed: \(reason)")
    }

    /// The node is NORMAL.
    package mutating func onCompleted() { phase = .done }

    // MARK: Steps

    private mutating func nextRound() -> UInt64 {
        lastRound += 1
        return lastRound
    }

    private mutating func retry(now: RingInstant, after pause: Duration, _ reason: String) -> [Action] {
        phase = .waiting(until: now + pause)
        return [.note("bootstrap waits and tries again (staying JOINING, no reads served): \(reason)")]
    }

    private mutating func beginConfirm(now: RingInstant, view: MoveView) -> [Action] {
        if let other = view.bootstrapBlocker {
            return retry(
                now: now, after: timing.ringDelay,
                "\(other.node.address) is \(other.status?.rawValue ?? "moving") too; one node joins or leaves at a time"
            )
        }
        guard !view.ring.isEmpty else { return retry(now: now, after: timing.ringDelay, "no NORMAL member known yet") }
        let members = view.membersToConfirm
        let round = nextRound()
        phase = .confirming(
            round: round, waiting: Set(members), generations: [:], deadline: now + timing.confirmTimeout)
        if members.isEmpty { phase = .settling(until: now + timing.settle, generations: [:]) }
        return members.isEmpty ? [] : [.confirm(round: round, members: members)]
    }

    private mutating func beginStream(now: RingInstant, view: MoveView, generations: [NodeID: Int64]) -> [Action] {
        let before = view.ring
        var jobs: [StreamJob] = []
        for rf in replicationFactors {
            let capped = max(1, min(rf, before.nodeCount + 1))
            let fetches: [RangeMovement.Fetch]
            do {
                fetches = try RangeMovement.bootstrap(
                    ring: before, joining: view.local, tokens: tokens, replicationFactor: capped)
            } catch {
                return retry(now: now, after: timing.ringDelay, "cannot plan the stream: \(error)")
            }
            var bySource: [NodeID: [TokenRange]] = [:]
            for fetch in fetches {
                let live = fetch.sources.filter { view.isAlive($0) && $0 != view.local }
                guard let source = live.first(where: { !avoid.contains($0) }) ?? live.first else {
                    return retry(
                        now: now, after: timing.ringDelay,
                        "no live source for range \(fetch.range) (the replica giving it up, or any old replica if none does: \(fetch.sources.map { "\($0.address)" }.joined(separator: ", ")))"
                    )
                }
                bySource[source, default: []].append(fetch.range)
            }
            for source in bySource.keys.sorted() {
                jobs.append(StreamJob(source: source, replicationFactor: rf, ranges: bySource[source]!))
            }
        }
        attempts += 1
        let round = nextRound()
        let sources = Set(jobs.map(\.source))
        guard !sources.isEmpty else { return beginVerify(now: now, view: view, expected: generations, before: before) }
        phase = .streaming(
            round: round, waiting: sources, before: before, generations: generations,
            deadline: now + timing.streamTimeout)
        return [.stream(round: round, jobs)]
    }

    private mutating func beginVerify(
        now: RingInstant, view: MoveView, expected: [NodeID: Int64], before: TokenRing
    ) -> [Action] {
        let members = view.membersToConfirm
        let round = nextRound()
        if let unasked = members.first(where: { expected[$0] == nil }) {
            return retry(now: now, after: timing.confirmInterval, "\(unasked.address) was not asked before streaming")
        }
        guard !members.isEmpty else {
            phase = .completing
            return [.complete(tokens)]
        }
        phase = .verifying(
            round: round, waiting: Set(members), expected: expected, before: before,
            deadline: now + timing.confirmTimeout)
        return [.confirm(round: round, members: members)]
    }
}

/// Why a member did not confirm a move (it does not see it yet, it did not answer…).
package struct MoveRefusal: Error, Hashable, Sendable {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
}
