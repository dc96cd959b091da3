import ConfabEngine

/// Coordinates one read of a slice across replicas, with digest reads and blocking read repair
/// (Cassandra's `AbstractReadExecutor`, `DigestResolver`, `DataResolver` and
/// `BlockingReadRepair`), as a state machine: create it, carry out `start()`'s actions, feed it
/// responses and clock ticks until `isFinished`.
///
/// Flow:
/// 1. Contact the first `blockFor` live replicas (the shell orders replicas by proximity, this node
///    first): full data from the first, digests from the others. `unavailable` if fewer than
///    `blockFor` replicas are alive, before anything is sent.
/// 2. When all answered: if every digest equals the data's digest, answer with the data.
/// 3. Otherwise request full data from every contacted replica, merge by timestamp, and send each
///    stale replica a repair mutation with exactly what it lacks.
/// 4. Answer only after every repair was acknowledged. So once a QUORUM read returned a value, a
///    quorum holds it and every later QUORUM read sees it (monotonic reads).
///
/// Any step not finished by the deadline fails with `readTimeout` (which says which step).
/// Exactly one of `.succeeded` and `.failed` is emitted.
public struct ReadCoordinator: Sendable {
    public enum Action: Hashable, Sendable {
        /// Ask the replica for the slice's full data (`ReplicaReadResult`).
        case requestData(SliceQuery, from: NodeID)
        /// Ask the replica for the digest of its `ReplicaReadResult` only.
        case requestDigest(SliceQuery, from: NodeID)
        /// Write this repair on the replica; answer with `onRepairAck`.
        case sendRepair(Mutation, to: NodeID)
        case succeeded(ReadResult)
        case failed(RingError)
    }

    enum Phase: String, Sendable {
        case collecting = "waiting for data and digests"
        case reconciling = "waiting for full data after a digest mismatch"
        case repairing = "waiting for read-repair acknowledgements"
        case done
    }

    public let query: SliceQuery
    public let consistency: ConsistencyLevel
    public let blockFor: Int
    public let deadline: RingInstant
    let timeout: Duration
    /// Seconds since the epoch on the coordinator, for TTL expiry of the answer.
    let nowSeconds: Int64
    let live: [NodeID]
    private(set) var contacted: [NodeID] = []
    private(set) var phase: Phase = .collecting
    private(set) var data: [NodeID: ReplicaReadResult] = [:]
    private(set) var digests: [NodeID: ReadDigest] = [:]
    private(set) var pendingRepairs: Set<NodeID> = []
    private var merged: ReplicaReadResult?
    /// True when digests disagreed and the read repaired replicas (for metrics).
    public private(set) var repairedReplicas: [NodeID] = []

    public var isFinished: Bool { phase == .done }

    /// - Parameters:
    ///   - replicas: the key's replicas, in the order to prefer them (closest first).
    ///   - nowSeconds: the coordinator's wall clock in seconds, for TTL expiry of cells.
    public init(query: SliceQuery, replicas: [NodeID], consistency: ConsistencyLevel, replicationFactor: Int,
                isAlive: (NodeID) -> Bool, now: RingInstant, nowSeconds: Int64, timeout: Duration = .seconds(5)) {
        self.query = query
        self.consistency = consistency
        self.blockFor = consistency.blockFor(replicationFactor: replicationFactor)
        self.live = replicas.filter(isAlive)
        self.timeout = timeout
        self.deadline = now + timeout
        self.nowSeconds = nowSeconds
    }

    public mutating func start() -> [Action] {
        guard live.count >= blockFor, blockFor > 0 else {
            phase = .done
            return [.failed(.unavailable(consistency, required: blockFor, alive: live.count))]
        }
        contacted = Array(live.prefix(blockFor))
        var actions: [Action] = [.requestData(query, from: contacted[0])]
        for r in contacted.dropFirst() { actions.append(.requestDigest(query, from: r)) }
        return actions
    }

    /// A replica's full data (in either phase).
    public mutating func onData(from replica: NodeID, _ result: ReplicaReadResult) -> [Action] {
        guard contacted.contains(replica), phase == .collecting || phase == .reconciling else { return [] }
        data[replica] = result
        return advance()
    }

    public mutating func onDigest(from replica: NodeID, _ digest: ReadDigest) -> [Action] {
        guard contacted.contains(replica), phase == .collecting else { return [] }
        digests[replica] = digest
        return advance()
    }

    public mutating func onRepairAck(from replica: NodeID) -> [Action] {
        guard phase == .repairing, pendingRepairs.remove(replica) != nil else { return [] }
        return pendingRepairs.isEmpty ? finish() : []
    }

    /// A replica could not answer: the read cannot reach its level without it.
    public mutating func onFailure(from replica: NodeID, reason: String) -> [Action] {
        guard contacted.contains(replica), phase != .done else { return [] }
        phase = .done
        return [.failed(RingError(.readFailure,
                                  "\(consistency.rawValue) read failed: replica \(replica) reported an error: \(reason)",
                                  consistency: consistency, required: blockFor, received: data.count + digests.count))]
    }

    public mutating func onTick(now: RingInstant) -> [Action] {
        guard phase != .done, now >= deadline else { return [] }
        let step = phase.rawValue
        let received: Int
        switch phase {
        case .collecting: received = Set(data.keys).union(digests.keys).count
        case .reconciling: received = data.count
        case .repairing: received = blockFor - pendingRepairs.count
        case .done: received = 0
        }
        phase = .done
        return [.failed(.timeout(write: false, consistency, required: blockFor, received: received,
                                 after: timeout, phase: step))]
    }

    private mutating func advance() -> [Action] {
        switch phase {
        case .collecting:
            guard let first = data[contacted[0]],
                  Set(data.keys).union(digests.keys).count == contacted.count else { return [] }
            let expected = first.digest()
            let others = contacted.dropFirst().map { data[$0]?.digest() ?? digests[$0]! }
            if others.allSatisfy({ $0 == expected }) {
                merged = first.normalized()
                return finish()
            }
            phase = .reconciling
            let missing = contacted.filter { data[$0] == nil }
            return missing.map { .requestData(query, from: $0) }
        case .reconciling:
            guard data.count == contacted.count else { return [] }
            let m = ReadResolver.merge(contacted.map { data[$0]! })
            merged = m
            let repairs = ReadResolver.repairs(merged: m, responses: data)
            guard !repairs.isEmpty else { return finish() }
            phase = .repairing
            pendingRepairs = Set(repairs.keys)
            repairedReplicas = contacted.filter { repairs[$0] != nil }
            return repairedReplicas.map { node in
                let diff = repairs[node]!
                return .sendRepair(Mutation(table: query.table, partitionKey: query.partitionKey,
                                            header: diff.header, rows: diff.rows), to: node)
            }
        case .repairing, .done:
            return []
        }
    }

    private mutating func finish() -> [Action] {
        phase = .done
        return [.succeeded(ReadResolver.resolve(merged ?? ReplicaReadResult(), query: query, nowSeconds: nowSeconds))]
    }
}
