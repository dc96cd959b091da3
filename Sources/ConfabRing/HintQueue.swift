import ConfabEngine

/// A write a replica missed, kept by the coordinator to replay later (hinted handoff).
///
/// The mutation keeps its original cell timestamps, so replaying it twice, or after newer writes,
/// changes nothing that a newer write or delete already decided (last write wins per cell).
public struct Hint: Hashable, Sendable {
    public var id: UInt64
    public var target: NodeID
    public var mutation: Mutation
    public var createdAt: RingInstant
    /// Encoded size in bytes, what replay throttling counts.
    public var size: Int

    public init(id: UInt64, target: NodeID, mutation: Mutation, createdAt: RingInstant, size: Int? = nil) {
        self.id = id
        self.target = target
        self.mutation = mutation
        self.createdAt = createdAt
        self.size = size ?? mutation.encoded().count
    }
}

/// Which hints to keep and when to replay them (Cassandra's `HintsService` policy), without the
/// storage: the shell persists what `.persist` says, deletes what `.delete` says, sends what
/// `.replay` says, and rebuilds the queue from its files with `init(recovered:)` after a restart.
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
public struct HintQueue: Sendable {
    public struct Configuration: Sendable {
        public var window: Duration = .seconds(3 * 3600)
        public var maxAge: Duration = .seconds(10 * 24 * 3600)
        public var replayBytesPerSecond: Int = 1 << 20
        public var maxInFlightPerTarget: Int = 8
        public var replayTimeout: Duration = .seconds(10)
        public init() {}
    }

    public enum Action: Hashable, Sendable {
        /// Write the hint durably (before the write's outcome depends on it).
        case persist(Hint)
        /// Remove the hint from durable storage.
        case delete(id: UInt64, target: NodeID)
        /// Send the hint's mutation to its target; answer with `onReplayAck` / `onReplayFailed`.
        case replay(Hint)
    }

    /// Counters for metrics.
    public struct Stats: Hashable, Sendable {
        public var stored = 0
        public var droppedOutsideWindow = 0
        public var expired = 0
        public var replayed = 0
        public var replayFailures = 0
        public var droppedForLeftNode = 0
    }

    public let configuration: Configuration
    public private(set) var stats = Stats()
    private var queues: [NodeID: [Hint]] = [:]
    private var inFlight: [UInt64: RingInstant] = [:]
    private var nextID: UInt64 = 1
    private var budget: Double = 0
    private var lastRefill: RingInstant?

    public init(configuration: Configuration = Configuration(), recovered: [Hint] = []) {
        self.configuration = configuration
        for h in recovered.sorted(by: { $0.id < $1.id }) {
            queues[h.target, default: []].append(h)
            nextID = max(nextID, h.id + 1)
        }
    }

    /// Keeps a hint for `target` unless it has been down longer than the window.
    /// - Parameter targetDownSince: when the failure detector convicted the target (nil if it is
    ///   up, e.g. it only timed out).
    public mutating func store(_ mutation: Mutation, for target: NodeID, targetDownSince: RingInstant?,
                               now: RingInstant) -> [Action] {
        if let down = targetDownSince, now - down > configuration.window {
            stats.droppedOutsideWindow += 1
            return []
        }
        let hint = Hint(id: nextID, target: target, mutation: mutation, createdAt: now)
        nextID += 1
        queues[target, default: []].append(hint)
        stats.stored += 1
        return [.persist(hint)]
    }

    /// Expires old hints, retries timed-out replays, and plans replays to live targets within the
    /// rate. Call periodically (e.g. every 100 ms) and on a target coming up.
    public mutating func onTick(now: RingInstant, isAlive: (NodeID) -> Bool) -> [Action] {
        var actions: [Action] = []
        let rate = Double(configuration.replayBytesPerSecond)
        if let last = lastRefill {
            budget = min(rate, budget + rate * (now - last).seconds)
        } else {
            budget = rate
        }
        lastRefill = now
        for (id, deadline) in inFlight where deadline <= now {
            inFlight[id] = nil
            stats.replayFailures += 1
        }
        for target in queues.keys.sorted() {
            var queue = queues[target]!
            queue.removeAll { h in
                guard now - h.createdAt > configuration.maxAge, inFlight[h.id] == nil else { return false }
                stats.expired += 1
                actions.append(.delete(id: h.id, target: target))
                return true
            }
            queues[target] = queue.isEmpty ? nil : queue
            guard isAlive(target) else { continue }
            var flying = queue.reduce(0) { $0 + (inFlight[$1.id] == nil ? 0 : 1) }
            for h in queue where inFlight[h.id] == nil {
                guard flying < configuration.maxInFlightPerTarget, budget > 0 else { break }
                budget -= Double(h.size)
                inFlight[h.id] = now + configuration.replayTimeout
                flying += 1
                actions.append(.replay(h))
            }
        }
        return actions
    }

    /// The target applied the hint: it is delivered and can be deleted.
    public mutating func onReplayAck(id: UInt64) -> [Action] {
        guard inFlight.removeValue(forKey: id) != nil else { return [] }
        for (target, queue) in queues {
            guard let i = queue.firstIndex(where: { $0.id == id }) else { continue }
            queues[target]!.remove(at: i)
            if queues[target]!.isEmpty { queues[target] = nil }
            stats.replayed += 1
            return [.delete(id: id, target: target)]
        }
        return []
    }

    /// Drops every hint for `target`, which left the ring: it will never take them, and its
    /// ranges now live on other nodes (which got the data by streaming). Keeping them would
    /// hold memory and disk until `maxAge` (days) for nothing.
    public mutating func dropHints(for target: NodeID) -> [Action] {
        guard let queue = queues.removeValue(forKey: target) else { return [] }
        for h in queue { inFlight[h.id] = nil }
        stats.droppedForLeftNode += queue.count
        return queue.map { .delete(id: $0.id, target: target) }
    }

    /// The replay failed; the hint stays queued and is retried on a later tick.
    public mutating func onReplayFailed(id: UInt64) {
        if inFlight.removeValue(forKey: id) != nil { stats.replayFailures += 1 }
    }

    public func pendingCount(for target: NodeID) -> Int { queues[target]?.count ?? 0 }
    public var totalPending: Int { queues.values.reduce(0) { $0 + $1.count } }
    public var targets: [NodeID] { queues.keys.sorted() }
}
