import ConfabEngine

/// Coordinates one write across its replicas (Cassandra's `StorageProxy.mutate` with a
/// `WriteResponseHandler`), as a state machine: create it, carry out `start()`'s actions, then feed
/// it acknowledgements, failures and clock ticks until `isFinished`.
///
/// Guarantees:
/// - `unavailable` is decided before anything is sent: if fewer replicas are alive than the level
///   needs, nothing is written anywhere and no hint is stored.
/// - Otherwise the mutation goes to every live replica (and pending replica of a range being
///   bootstrapped); the request succeeds as soon as `blockFor` replicas acknowledged, and fails
///   with `writeTimeout` if that has not happened by the deadline. Exactly one of `.succeeded`
///   and `.failed` is emitted.
/// - Every replica that does not acknowledge — down at the start, or silent by the deadline —
///   gets a `.storeHint` (hinted handoff; the hint queue applies the hint window). Hints replay the
///   mutation with its original timestamps, so replay is idempotent.
package struct WriteCoordinator: Sendable {
    package enum Action: Hashable, Sendable {
        /// Send the mutation to a replica (to this node itself: apply it locally).
        case send(Mutation, to: NodeID)
        /// The replica missed the write: keep it as a hint for later replay.
        case storeHint(Mutation, for: NodeID)
        /// Answer the client: the level was met.
        case succeeded
        /// Answer the client: the level cannot be or was not met.
        case failed(RingError)
    }

    package let mutation: Mutation
    package let consistency: ConsistencyLevel
    /// Acknowledgements needed: the level's count for RF, plus one per pending replica
    /// (Cassandra's rule, so a bootstrap cannot hide a missing acknowledgement).
    package let blockFor: Int
    package let deadline: RingInstant
    let timeout: Duration
    /// All replicas in ring order, then pending ones.
    let targets: [NodeID]
    let alive: Set<NodeID>
    private(set) var outstanding: Set<NodeID> = []
    private(set) var acknowledged: Set<NodeID> = []
    private(set) var failedReplicas: Set<NodeID> = []
    /// True once the client has its answer.
    package private(set) var responded = false
    /// True once nothing more can happen (every replica answered, or the deadline passed).
    package private(set) var isFinished = false

    /// - Parameters:
    ///   - replicas: the key's natural replicas in ring order (`TokenRing.replicas`).
    ///   - pending: replicas gaining the range through a bootstrap in progress.
    ///   - isAlive: the failure detector's current verdict.
    package init(
        mutation: Mutation, replicas: [NodeID], pending: [NodeID] = [], consistency: ConsistencyLevel,
        replicationFactor: Int, isAlive: (NodeID) -> Bool, now: RingInstant, timeout: Duration = .seconds(2)
    ) {
        self.mutation = mutation
        self.consistency = consistency
        let extra = pending.filter { !replicas.contains($0) }
        self.blockFor = consistency.blockFor(replicationFactor: replicationFactor) + extra.count
        self.targets = replicas + extra
        self.alive = Set(targets.filter(isAlive))
        self.timeout = timeout
        self.deadline = now + timeout
    }

    /// The first actions: either `.failed(unavailable)` alone, or sends to live replicas and hints
    /// for down ones.
    package mutating func start() -> [Action] {
        if alive.count < blockFor {
            responded = true
            isFinished = true
            return [.failed(.unavailable(consistency, required: blockFor, alive: alive.count))]
        }
        var actions: [Action] = []
        for t in targets {
            if alive.contains(t) {
                outstanding.insert(t)
                actions.append(.send(mutation, to: t))
            } else {
                actions.append(.storeHint(mutation, for: t))
            }
        }
        return actions
    }

    /// A replica applied the mutation.
    package mutating func onAck(from replica: NodeID) -> [Action] {
        guard !isFinished, outstanding.remove(replica) != nil else { return [] }
        acknowledged.insert(replica)
        var actions: [Action] = []
        if !responded, acknowledged.count >= blockFor {
            responded = true
            actions.append(.succeeded)
        }
        if outstanding.isEmpty { isFinished = true }
        return actions
    }

    /// A replica reported that it could not apply the mutation (disk full, overloaded …).
    package mutating func onFailure(from replica: NodeID, reason: String) -> [Action] {
        guard !isFinished, outstanding.remove(replica) != nil else { return [] }
        failedReplicas.insert(replica)
        var actions: [Action] = []
        if !responded, acknowledged.count + outstanding.count < blockFor {
            responded = true
            actions.append(
                .failed(
                    RingError(
                        .writeFailure,
                        "\(consistency.rawValue) write failed: \(failedReplicas.count) replica(s) reported errors (last from \(replica): \(reason)); \(acknowledged.count) of \(blockFor) required acknowledged",
                        consistency: consistency, required: blockFor, received: acknowledged.count)))
        }
        if outstanding.isEmpty { isFinished = true }
        return actions
    }

    /// The clock moved. At the deadline: time out if the level was not met, and hint every replica
    /// that has not acknowledged.
    package mutating func onTick(now: RingInstant) -> [Action] {
        guard !isFinished, now >= deadline else { return [] }
        var actions: [Action] = []
        if !responded {
            responded = true
            actions.append(
                .failed(
                    .timeout(
                        write: true, consistency, required: blockFor,
                        received: acknowledged.count, after: timeout)))
        }
        for t in targets where outstanding.contains(t) {
            actions.append(.storeHint(mutation, for: t))
        }
        outstanding.removeAll()
        isFinished = true
        return actions
    }
}
