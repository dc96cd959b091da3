import ConfabRing
import ConfabWire

/// Bootstrap: a new node joining a ring that has NORMAL members fetches its data before it
/// serves reads (Cassandra's `StorageService.bootstrap` with `RangeStreamer`).
///
/// 1. Announce JOINING with the allocated tokens. From the moment a coordinator learns them it
///    sends this node every write for the ranges it will replicate, as a pending replica
///    (`PendingRanges`); reads still go to the old replicas only.
/// 2. Wait the ring delay, then until every member confirms it sees this node JOINING with these
///    tokens, then the write timeout (`ClusterService+MoveConfirmation.swift`): from then on no
///    write to those ranges misses this node, so a stream started now plus the writes arriving
///    directly cover everything. After the stream every member must confirm again with the
///    same generation (none restarted meanwhile), or the stream is repeated.
/// 3. `RangeMovement.bootstrap` gives every range it will replicate with its source: the replica
///    giving the range up (any old replica only when none does). If that node is down the attempt
///    fails and is retried rather than copying a replica that keeps the range, which may lack
///    writes the giver has (Cassandra's strict range movement). Each source is asked with a
///    StreamRangesRequest (0x58) to send its data in those ranges to this node as ReplicaWrites;
///    sources work in parallel. Mutations keep their timestamps, so the result is idempotent.
/// 4. Flush, persist the tokens, announce NORMAL.
///
/// Any failure (a source dies or times out, another node starts joining or leaving, the ring
/// changes under the stream) keeps the node JOINING — it never becomes NORMAL with missing data —
/// and the whole stream is retried after a pause with the same tokens. A node killed while
/// bootstrapping has no tokens file, so its next start bootstraps afresh.
extension ClusterService {
    var ringDelay: Duration { configuration.ringDelay ?? configuration.gossipInterval * 5 }

    var schema: SchemaRegistry { configuration.schema }

    /// Every keyspace's configured factor (movements are planned per factor).
    var replicationFactors: [Int] {
        Array(Set(configuration.schema.keyspaces.map(\.replicationFactor) + [configuration.replicationFactor])).sorted()
    }

    func beginBootstrap(tokens: [Token]) {
        gossiper?.setStatus(.joining, tokens: tokens)
        rebuildRing()
        logger.info(
            "bootstrap: announced JOINING with tokens; waiting the ring delay before streaming",
            metadata: [
                "tokens": "\(tokens.count)", "ring_nodes": "\(ring.nodeCount)", "ring_delay": "\(ringDelay)",
            ])
        bootstrapTask = Task { await self.runBootstrap(tokens: tokens) }
    }

    private func runBootstrap(tokens: [Token]) async {
        do { try await Task.sleep(for: ringDelay) } catch { return }
        var attempt = 0
        // Sources that failed an earlier attempt: used again only when no other source is live
        // (the failure detector may not have convicted a dead source yet). Only ranges nobody
        // gives up have more than one source.
        var avoid: Set<NodeID> = []
        while !Task.isCancelled {
            attempt += 1
            do {
                try await streamForBootstrap(tokens: tokens, attempt: attempt, avoid: avoid)
                try await completeBootstrap(tokens: tokens)
                return
            } catch {
                if let source = (error as? BootstrapError)?.source { avoid.insert(source) }
                let pause = max(ringDelay, configuration.gossipInterval * 5)
                logger.error(
                    "bootstrap failed; staying JOINING (no reads served) and streaming again",
                    metadata: [
                        "attempt": "\(attempt)", "retry_in": "\(pause)", "error": "\(error)",
                    ])
                do { try await Task.sleep(for: pause) } catch { return }
            }
        }
    }

    /// The live moving node this joiner must wait for, if any. One node joins or leaves at a time,
    /// but two joiners that each waited for the other would stay JOINING for good (both announced
    /// tokens before hearing of each other), so among live JOINING nodes with tokens the one with
    /// the smallest id goes first and the others wait; a LEAVING node always goes first.
    static func bootstrapBlocker(local: NodeID, states: [EndpointState], alive: Set<NodeID>) -> EndpointState? {
        states.filter {
            $0.node != local && alive.contains($0.node)
                && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty && $0.node < local))
        }.min { $0.node < $1.node }
    }

    /// One complete stream of every range this node will replicate; throws if any part failed.
    private func streamForBootstrap(tokens: [Token], attempt: Int, avoid: Set<NodeID>) async throws {
        guard let g = gossiper else { return }
        let local = g.local
        if let other = Self.bootstrapBlocker(local: local, states: Array(g.states.values), alive: aliveSet(at: now())) {
            throw BootstrapError(
                "\(other.node.address) is \(other.status?.rawValue ?? "moving") too; one node joins or leaves at a time, so waiting for it to finish"
            )
        }
        let generations = try await confirmMovePatiently(.joining, tokens: tokens, patience: ringDelay * 2)
        try await settleAfterConfirmation()
        let before = ring
        let alive = aliveSet(at: now())
        // Per table (its keyspace's factor): the ranges to fetch, grouped by the source chosen.
        var jobs: [NodeID: [(table: TableSchema, ranges: [TokenRange])]] = [:]
        var rangeCount = 0
        for table in schema.tables {
            let rf = max(1, min(schema.replicationFactor(keyspace: table.keyspace), before.nodeCount + 1))
            let fetches = try RangeMovement.bootstrap(
                ring: before, joining: local, tokens: tokens, replicationFactor: rf)
            var bySource: [NodeID: [TokenRange]] = [:]
            for fetch in fetches {
                let live = fetch.sources.filter { alive.contains($0) && $0 != local }
                guard let source = live.first(where: { !avoid.contains($0) }) ?? live.first else {
                    throw BootstrapError(
                        "no live source for range \(fetch.range) (the replica giving it up, or any old replica if none does: \(fetch.sources.map { "\($0.address)" }.joined(separator: ", ")))"
                    )
                }
                bySource[source, default: []].append(fetch.range)
            }
            for (source, ranges) in bySource { jobs[source, default: []].append((table, ranges)) }
            rangeCount = max(rangeCount, fetches.count)
        }
        logger.info(
            "bootstrap: streaming",
            metadata: [
                "attempt": "\(attempt)", "ranges": "\(rangeCount)", "sources": "\(jobs.count)",
                "tables": "\(schema.tables.count)",
            ])
        let started = ContinuousClock.now
        let messenger = self.messenger
        let logger = self.logger
        let totals = try await withThrowingTaskGroup(of: (NodeID, StreamRangesDone).self) { group in
            for (source, work) in jobs {
                group.addTask {
                    var mutations: UInt32 = 0
                    var rows: UInt64 = 0
                    for (table, ranges) in work {
                        let request = StreamRangesRequest(
                            keyspace: table.keyspace, table: table.name, target: local.address, ranges: ranges)
                        let reply: WireMessage
                        do {
                            reply = try await messenger.request(
                                .streamRanges(request), to: source.address, timeout: .seconds(600))
                        } catch {
                            throw BootstrapError(
                                "streaming \(ranges.count) range(s) of \(table.qualifiedName) from \(source.address) failed: \(error)",
                                source: source)
                        }
                        guard case .streamRangesDone(let done) = reply else {
                            throw BootstrapError(
                                "\(source.address) answered StreamRangesRequest with \(reply.type)", source: source)
                        }
                        mutations &+= done.mutations
                        rows &+= done.rows
                    }
                    logger.info(
                        "bootstrap: source done",
                        metadata: [
                            "source": "\(source.address)", "ranges": "\(work.map(\.ranges.count).max() ?? 0)",
                            "mutations": "\(mutations)", "rows": "\(rows)",
                        ])
                    return (source, StreamRangesDone(mutations: mutations, rows: rows))
                }
            }
            var total = StreamRangesDone(mutations: 0, rows: 0)
            for try await (_, done) in group {
                total.mutations &+= done.mutations
                total.rows &+= done.rows
            }
            return total
        }
        _ = try await confirmMove(.joining, tokens: tokens, expected: generations)
        guard ring == before else {
            throw BootstrapError("the ring changed while streaming (a node joined or left)")
        }
        logger.info(
            "bootstrap: streaming complete",
            metadata: [
                "mutations": "\(totals.mutations)", "rows": "\(totals.rows)",
                "elapsed": "\(ContinuousClock.now - started)",
            ])
    }

    /// Makes the streamed data durable, persists the tokens and announces NORMAL.
    private func completeBootstrap(tokens: [Token]) async throws {
        try await replica.flush()
        let directory = configuration.dataDirectory
        try await replica.threadPool.runIfActive { try NodeStateFiles.saveTokens(tokens, dataDirectory: directory) }
        persistedTokens = tokens
        gossiper?.setStatus(.normal, tokens: tokens)
        rebuildRing()
        bootstrapTask = nil
        logger.info(
            "bootstrap complete: normal", metadata: ["tokens": "\(tokens.count)", "ring_nodes": "\(ring.nodeCount)"])
    }
}

/// Why a bootstrap or decommission attempt stopped (logged; the node retries or reverts).
struct BootstrapError: Error, CustomStringConvertible {
    let description: String
    /// The source whose stream failed, if that was the cause (avoided on the next attempt).
    let source: NodeID?
    init(_ description: String, source: NodeID? = nil) {
        self.description = description
        self.source = source
    }
}
