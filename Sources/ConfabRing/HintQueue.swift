import ConfabEngine

/// A write a replica missed, kept by the coordinator to replay later (hinted handoff).
///
/// The mutation keeps its original cell timestamps, so replaying it twice, or after newer writes,
/// changes nothing that a newer write or delete already decided (last write wins per cell).
package struct Hint: Hashable, Sendable {
    package var id: UInt64
    package var target: NodeID
    package var mutation: Mutation
    package var createdAt: RingInstant
    /// Encoded size in bytes, what replay throttling counts.
    package var size: Int

    package init(id: UInt64, target: NodeID, mutation: Mutation, createdAt: RingInstant, size: Int? = nil) {
        self.id = id
        self.target = target
        self.mutation = mutation
        self.createdAt = createdAt
        self.size = size ?? mutation.encoded().count
    }
}

/// What the queue keeps of a hint: everything but the mutation, which stays on disk until it is
/// replayed. A coordinator can hold hints for a target that is down for hours; keeping their
/// mutations (chat messages up to 100,000 characters) in memory would grow without bound.
package struct HintRef: Hashable, Sendable {
    package var id: UInt64
    package var target: NodeID
    package var createdAt: RingInstant
    package var size: Int

    package init(id: UInt64, target: NodeID, createdAt: RingInstant, size: Int) {
        self.id = id
        self.target = target
        self.createdAt = createdAt
        self.size = size
    }
}

extension Hint {
    package var ref: HintRef { HintRef(id: id, target: target, createdAt: createdAt, size: size) }
}

/// Which hints to keep and when to replay them (Cassandra's `HintsService` policy), without the
/// storage: the shell persists what `.persist` says, deletes what `.delete` says, loads and sends
/// the hint `.replay` names, and rebuilds the queue from its files with `init(recovered:)` after a
/// restart. The queue holds `HintRef`s, not mutations.
///
/// Cost: a tick touches each target with hints, the replays in flight and the replays it plans —
/// never every hint (a tick runs every 100 ms inside the ring actor). Per target, hints wait in
/// creation order; expiry looks at the oldest only.
///
/// Rules:
/// - No hint is stored for a target down longer than `window` (3 h, `max_hint_window`): after that
///   the node must be repaired, and unbounded hints would fill the disk.
/// - Hints older than `maxAge` are dropped without replay (Cassandra: gc_grace_seconds), because
///   the tombstones they would need to stay correct may have been purged meanwhile.
/// - Replay starts when the target is alive, per target in creation order, at most
///   `replayBytesPerSecond` in total (token bucket; `hinted_handoff_throttle`) and
///   `maxInFlightPerTarget` at once. A hint is deleted only after the target acknowledged it; a
///   failed or timed-out replay is retried (at-least-once delivery).
package struct HintQueue: Sendable {
    package struct Configuration: Sendable {
        package var window: Duration = .seconds(3 * 3600)
        package var maxAge: Duration = .seconds(10 * 24 * 3600)
        package var replayBytesPerSecond: Int = 1 << 20
        package var maxInFlightPerTarget: Int = 8
        package var replayTimeout: Duration = .seconds(10)
        package init() {}
    }

    package enum Action: Hashable, Sendable {
        /// Write the hint durably (before the write's outcome depends on it).
        case persist(Hint)
        /// Remove the hint from durable storage.
        case delete(id: UInt64, target: NodeID)
        /// Load the hint's mutation from storage and send it to its target; answer with
        /// `onReplayAck` / `onReplayFailed` (or `forget` when storage has no such hint).
        case replay(HintRef)
    }

    /// Counters for metrics.
    package struct Stats: Hashable, Sendable {
        package var stored = 0
        package var droppedOutsideWindow = 0
        package var expired = 0
        package var replayed = 0
        package var replayFailures = 0
        package var droppedForLeftNode = 0
        /// Hints the last `onTick` looked at (expiry checks and planned replays): bounded by the
        /// targets and the replays, whatever the number of hints held.
        package var examinedLastTick = 0
    }

    /// One target's hints: those waiting, oldest first, and those being replayed.
    struct TargetHints: Sendable {
        var waiting: [HintRef] = []
        /// Index of the first waiting hint (the array is compacted when half is consumed).
        var head = 0
        var flying: [UInt64: HintRef] = [:]
        var count: Int { waiting.count - head + flying.count }
        var isEmpty: Bool { count == 0 }

        mutating func popFirst() -> HintRef? {
            guard head < waiting.count else { return nil }
            let h = waiting[head]
            head += 1
            if head > 64, head * 2 > waiting.count {
                waiting.removeFirst(head)
                head = 0
            }
            return h
        }

        var first: HintRef? { head < waiting.count ? waiting[head] : nil }

        /// A replay that failed goes back in creation order (it is older than every waiting hint
        /// but possibly younger than another one put back).
        mutating func putBack(_ h: HintRef) {
            var i = head
            while i < waiting.count, waiting[i].id < h.id { i += 1 }
            if i == head, head > 0 {
                head -= 1
                waiting[head] = h
            } else {
                waiting.insert(h, at: i)
            }
        }
    }

    package let configuration: Configuration
    package private(set) var stats = Stats()
    private var byTarget: [NodeID: TargetHints] = [:]
    /// Replays in flight: their target and deadline.
    private var inFlight: [UInt64: (target: NodeID, deadline: RingInstant)] = [:]
    private var nextID: UInt64 = 1
    private var budget: Double = 0
    private var lastRefill: RingInstant?
    package private(set) var totalPending = 0

    package init(configuration: Configuration = Configuration(), recovered: [HintRef] = []) {
        self.configuration = configuration
        for h in recovered.sorted(by: { $0.id < $1.id }) {
            byTarget[h.target, default: TargetHints()].waiting.append(h)
            nextID = max(nextID, h.id + 1)
        }
        totalPending = recovered.count
    }

    /// Keeps a hint for `target` unless it has been down longer than the window.
    /// - Parameter targetDownSince: when the failure detector convicted the target (nil if it is
    ///   up, e.g. it only timed out).
    package mutating func store(
        _ mutation: Mutation, for target: NodeID, targetDownSince: RingInstant?,
        now: RingInstant
    ) -> [Action] {
        if let down = targetDownSince, now - down > configuration.window {
            stats.droppedOutsideWindow += 1
            return []
        }
        let hint = Hint(id: nextID, target: target, mutation: mutation, createdAt: now)
        nextID += 1
        byTarget[target, default: TargetHints()].waiting.append(hint.ref)
        totalPending += 1
        stats.stored += 1
        return [.persist(hint)]
    }

    /// Expires old hints, retries timed-out replays, and plans replays to live targets within the
    /// rate. Call periodically (e.g. every 100 ms) and on a target coming up.
    package mutating func onTick(now: RingInstant, isAlive: (NodeID) -> Bool) -> [Action] {
        var actions: [Action] = []
        var examined = 0
        let rate = Double(configuration.replayBytesPerSecond)
        if let last = lastRefill {
            budget = min(rate, budget + rate * (now - last).seconds)
        } else {
            budget = rate
        }
        lastRefill = now
        for (id, f) in inFlight where f.deadline <= now {
            inFlight[id] = nil
            stats.replayFailures += 1
            if let h = byTarget[f.target]?.flying.removeValue(forKey: id) { byTarget[f.target]!.putBack(h) }
        }
        for target in byTarget.keys.sorted() {
            var t = byTarget[target]!
            // Oldest first: expiry stops at the first hint young enough.
            while let h = t.first, now - h.createdAt > configuration.maxAge {
                examined += 1
                _ = t.popFirst()
                totalPending -= 1
                stats.expired += 1
                actions.append(.delete(id: h.id, target: target))
            }
            if isAlive(target) {
                while t.flying.count < configuration.maxInFlightPerTarget, budget > 0, let h = t.popFirst() {
                    examined += 1
                    budget -= Double(h.size)
                    t.flying[h.id] = h
                    inFlight[h.id] = (target, now + configuration.replayTimeout)
                    actions.append(.replay(h))
                }
            }
            byTarget[target] = t.isEmpty ? nil : t
        }
        stats.examinedLastTick = examined
        return actions
    }

    /// The target applied the hint: it is delivered and can be deleted.
    package mutating func onReplayAck(id: UInt64) -> [Action] {
        guard let f = inFlight.removeValue(forKey: id), byTarget[f.target]?.flying.removeValue(forKey: id) != nil else {
            return []
        }
        if byTarget[f.target]!.isEmpty { byTarget[f.target] = nil }
        totalPending -= 1
        stats.replayed += 1
        return [.delete(id: id, target: f.target)]
    }

    /// Storage has no such hint (its persist failed): stop replaying it.
    package mutating func forget(id: UInt64) -> [Action] {
        guard let f = inFlight.removeValue(forKey: id), byTarget[f.target]?.flying.removeValue(forKey: id) != nil else {
            return []
        }
        if byTarget[f.target]!.isEmpty { byTarget[f.target] = nil }
        totalPending -= 1
        return [.delete(id: id, target: f.target)]
    }

    /// Drops every hint for `target`, which left the ring: it will never take them, and its
    /// ranges now live on other nodes (which got the data by streaming). Keeping them would
    /// hold memory and disk until `maxAge` (days) for nothing.
    package mutating func dropHints(for target: NodeID) -> [Action] {
        guard let t = byTarget.removeValue(forKey: target) else { return [] }
        for id in t.flying.keys { inFlight[id] = nil }
        let all = (t.flying.values + t.waiting[t.head...]).sorted { $0.id < $1.id }
        totalPending -= all.count
        stats.droppedForLeftNode += all.count
        return all.map { .delete(id: $0.id, target: target) }
    }

    /// The replay failed; the hint goes back to its place and is retried on a later tick.
    package mutating func onReplayFailed(id: UInt64) {
        guard let f = inFlight.removeValue(forKey: id) else { return }
        stats.replayFailures += 1
        if let h = byTarget[f.target]?.flying.removeValue(forKey: id) { byTarget[f.target]!.putBack(h) }
    }

    package func pendingCount(for target: NodeID) -> Int { byTarget[target]?.count ?? 0 }
    package var targets: [NodeID] { byTarget.keys.sorted() }
}
