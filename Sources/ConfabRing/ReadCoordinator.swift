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
/// 5. Short-read protection (Cassandra's `ShortReadProtection`): a replica stops after `limit` rows
///    live by its own data and says where (`ReplicaReadResult.cursor`). The merge is trusted only
///    up to the first such key in query order (`ReadResolver.boundary`): past it a replica has not
///    looked, so a row it deleted could come back or a row only it holds could be skipped. When
///    tombstones leave fewer than `limit` live rows up to the boundary, another round reads on
///    after the boundary for the rows still missing — from the replicas that stopped at their
///    limit; the others already sent the rest of the slice — and repairs that part the same way.
///    A full page always carries a cursor; a page without one is the end of the slice. With a
///    byte limit (`SliceQuery.byteLimit`) replicas also stop at the row that reaches it, and a
///    round that found live rows ends the page at its boundary instead of reading on: such a page
///    may be shorter than `limit` and still carry a cursor.
///
/// Any step not finished by the deadline fails with `readTimeout` (which says which step).
/// Exactly one of `.succeeded` and `.failed` is emitted.
package struct ReadCoordinator: Sendable {
    package enum Action: Hashable, Sendable {
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

    /// A round's merge, held while its repairs are outstanding.
    struct Settled: Sendable {
        var merged: ReplicaReadResult
        var boundary: [UInt8]?
    }

    package let query: SliceQuery
    /// The slice the current round reads: `query` resumed after the previous round's boundary,
    /// limited to the rows still missing.
    package private(set) var window: SliceQuery
    /// Rounds of short-read protection after the first.
    package private(set) var extraRounds = 0
    package let consistency: ConsistencyLevel
    package let blockFor: Int
    package let deadline: RingInstant
    let timeout: Duration
    /// Seconds since the epoch on the coordinator, for TTL expiry of the answer.
    let nowSeconds: Int64
    let live: [NodeID]
    private(set) var contacted: [NodeID] = []
    private(set) var phase: Phase = .collecting
    private(set) var data: [NodeID: ReplicaReadResult] = [:]
    private(set) var digests: [NodeID: ReadDigest] = [:]
    private(set) var pendingRepairs: Set<NodeID> = []
    private var settled: Settled?
    /// Rows of earlier rounds, final, in query order.
    private var collected: [ReadResult.Row] = []
    private var tombstones = 0
    /// What replicas that read to the end of the slice sent past a round's boundary: their answer
    /// for the next round, so they are not asked again.
    private var exhausted: [NodeID: ReplicaReadResult] = [:]
    /// Replicas that failed to answer during this read; never asked again.
    package private(set) var failedReplicas: Set<NodeID> = []
    /// True when digests disagreed and the read repaired replicas (for metrics).
    package private(set) var repairedReplicas: [NodeID] = []

    package var isFinished: Bool { phase == .done }

    /// - Parameters:
    ///   - replicas: the key's replicas, in the order to prefer them (closest first).
    ///   - pending: replicas gaining the key's range through a join or leave in progress, as the
    ///     write coordinator gets them. They are read too, and each adds one to `blockFor`, as it
    ///     does for writes: a coordinator that already sees the move finished writes to the new
    ///     replicas only, so a reader that does not yet must reach enough of old and new alike to
    ///     meet that write's quorum (ring simulation seed 1430: a joiner, NORMAL for 200 ms,
    ///     acknowledged a write that a QUORUM read of the old replicas then missed).
    ///   - nowSeconds: the coordinator's wall clock in seconds, for TTL expiry of cells.
    package init(
        query: SliceQuery, replicas: [NodeID], pending: [NodeID] = [], consistency: ConsistencyLevel,
        replicationFactor: Int, isAlive: (NodeID) -> Bool, now: RingInstant, nowSeconds: Int64,
        timeout: Duration = .seconds(5)
    ) {
        self.query = query
        self.window = query
        self.consistency = consistency
        let extra = pending.filter { !replicas.contains($0) }
        self.blockFor = consistency.blockFor(replicationFactor: replicationFactor) + extra.count
        self.live = (replicas + extra).filter(isAlive)
        self.timeout = timeout
        self.deadline = now + timeout
        self.nowSeconds = nowSeconds
    }

    package mutating func start() -> [Action] {
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
    package mutating func onData(from replica: NodeID, _ result: ReplicaReadResult) -> [Action] {
        guard contacted.contains(replica), phase == .collecting || phase == .reconciling else { return [] }
        data[replica] = result
        return advance()
    }

    package mutating func onDigest(from replica: NodeID, _ digest: ReadDigest) -> [Action] {
        guard contacted.contains(replica), phase == .collecting else { return [] }
        digests[replica] = digest
        return advance()
    }

    package mutating func onRepairAck(from replica: NodeID) -> [Action] {
        guard phase == .repairing, pendingRepairs.remove(replica) != nil else { return [] }
        return pendingRepairs.isEmpty ? afterRound() : []
    }

    /// A read-repair write failed: the read cannot promise that a quorum now holds what it would
    /// return, so it fails now instead of waiting out the deadline for an acknowledgement that
    /// will not come.
    package mutating func onRepairFailure(from replica: NodeID, reason: String) -> [Action] {
        guard phase == .repairing, pendingRepairs.contains(replica) else { return [] }
        phase = .done
        return [
            .failed(
                RingError(
                    .readFailure,
                    "\(consistency.rawValue) read failed: the read repair of replica \(replica) failed: \(reason)",
                    consistency: consistency, required: blockFor, received: blockFor - pendingRepairs.count))
        ]
    }

    /// A replica could not answer (unreachable, or its data is corrupt, as when one SSTable block
    /// on it fails its checksum). That replica alone failed: when a live replica is left that the
    /// read has not used, it takes the failed one's place (full data, or a digest when the failed
    /// one owed a digest), so a QUORUM read succeeds from the healthy replicas. Only when none is
    /// left does the read fail.
    package mutating func onFailure(from replica: NodeID, reason: String) -> [Action] {
        guard let i = contacted.firstIndex(of: replica), phase != .done else { return [] }
        failedReplicas.insert(replica)
        if phase == .collecting || phase == .reconciling,
            let spare = live.first(where: { !contacted.contains($0) && !failedReplicas.contains($0) })
        {
            contacted[i] = spare
            data[replica] = nil
            digests[replica] = nil
            exhausted[replica] = nil
            return [
                phase == .collecting && i != 0 ? .requestDigest(window, from: spare) : .requestData(window, from: spare)
            ]
        }
        phase = .done
        return [
            .failed(
                RingError(
                    .readFailure,
                    "\(consistency.rawValue) read failed: replica \(replica) reported an error: \(reason)",
                    consistency: consistency, required: blockFor, received: data.count + digests.count))
        ]
    }

    package mutating func onTick(now: RingInstant) -> [Action] {
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
        return [
            .failed(
                .timeout(
                    write: false, consistency, required: blockFor, received: received,
                    after: timeout, phase: step))
        ]
    }

    private mutating func advance() -> [Action] {
        switch phase {
        case .collecting:
            guard let first = data[contacted[0]],
                Set(data.keys).union(digests.keys).count == contacted.count
            else { return [] }
            // A single replica (ONE, or RF 1) has nothing to agree with: its digest would cost a
            // normalization, an encoding and a hash of every row (~9% of a node serving reads).
            if contacted.count == 1 { return settle([contacted[0]: first]) }
            let expected = first.digest()
            let others = contacted.dropFirst().map { data[$0]?.digest() ?? digests[$0]! }
            if others.allSatisfy({ $0 == expected }) {
                // Equal data on every replica: one copy stands for all (equal rows stop at the same key).
                return settle([contacted[0]: first])
            }
            phase = .reconciling
            let missing = contacted.filter { data[$0] == nil }
            return missing.map { .requestData(window, from: $0) }
        case .reconciling:
            guard data.count == contacted.count else { return [] }
            return settle(data)
        case .repairing, .done:
            return []
        }
    }

    /// Merges a round's answers up to its boundary and repairs the replicas that lack part of it.
    private mutating func settle(_ responses: [NodeID: ReplicaReadResult]) -> [Action] {
        let boundary = ReadResolver.boundary(Array(responses.values), reversed: window.reversed)
        var covered: [NodeID: ReplicaReadResult] = [:]
        exhausted = [:]
        for (node, response) in responses {
            let (upTo, beyond) = ReadResolver.split(response, at: boundary, reversed: window.reversed)
            covered[node] = upTo
            if boundary != nil, response.cursor == nil { exhausted[node] = beyond }
        }
        let m = ReadResolver.merge(contacted.compactMap { covered[$0] })
        settled = Settled(merged: m, boundary: boundary)
        let repairs = responses.count > 1 ? ReadResolver.repairs(merged: m, responses: covered) : [:]
        guard !repairs.isEmpty else { return afterRound() }
        phase = .repairing
        pendingRepairs = Set(repairs.keys)
        for node in contacted where repairs[node] != nil && !repairedReplicas.contains(node) {
            repairedReplicas.append(node)
        }
        return contacted.compactMap { node in
            guard let diff = repairs[node] else { return nil }
            return .sendRepair(
                Mutation(
                    table: query.table, partitionKey: query.partitionKey,
                    header: diff.header, rows: diff.rows), to: node)
        }
    }

    /// Takes a settled round's rows; answers when the page is full or the slice ended, otherwise
    /// reads on after the boundary.
    private mutating func afterRound() -> [Action] {
        guard let round = settled else { return [] }
        settled = nil
        let page = ReadResolver.resolve(round.merged, query: window, nowSeconds: nowSeconds)
        collected += page.rows
        tombstones += page.tombstonesScanned
        if collected.count >= query.limit || round.boundary == nil {
            phase = .done
            let full = collected.count >= query.limit
            return [
                .succeeded(
                    ReadResult(
                        rows: collected, cursor: full ? collected.last?.clustering : nil,
                        tombstonesScanned: tombstones))
            ]
        }
        // A page in bytes ends where the round's answers end (a replica stopped at the byte
        // limit, or at the row limit with rows another shadowed): everything up to the boundary
        // is merged, so the next page resumes after it and nothing between is skipped.
        if query.byteLimit != nil, !collected.isEmpty {
            phase = .done
            return [.succeeded(ReadResult(rows: collected, cursor: round.boundary, tombstonesScanned: tombstones))]
        }
        // Short: tombstones hid rows up to the boundary. Read on after it for what is missing.
        extraRounds += 1
        window.cursor = round.boundary
        window.limit = query.limit - collected.count
        phase = .reconciling
        digests = [:]
        data = [:]
        for (node, rest) in exhausted {
            // Its repairs were acknowledged, so it now holds the merged header.
            data[node] = ReplicaReadResult(header: round.merged.header, rows: rest.rows)
        }
        let ask = contacted.filter { data[$0] == nil }
        guard !ask.isEmpty else { return settle(data) }
        return ask.map { .requestData(window, from: $0) }
    }
}
