import ConfabRing
import ConfabWire

/// Decommission: this node leaves the ring and hands its data to the nodes that gain its ranges
/// (Cassandra's `nodetool decommission`, `StorageService.unbootstrap`).
///
/// 1. Refuse unless this node is NORMAL, not alone, no other node is joining or leaving, and
///    every node that gains a range is alive.
/// 2. Announce LEAVING. This node stays an owner (reads and writes still use it), and
///    coordinators add the gaining nodes as pending replicas for writes (`PendingRanges`).
/// 3. Wait the ring delay, then until every member confirms it sees this node LEAVING, then the
///    write timeout (`ClusterService+MoveConfirmation.swift`); then stream every range it
///    replicates (`RangeMovement.decommission`) to each gaining node (ReplicaWrites through
///    `RangeStreamSource`, acknowledged durably); then every member must confirm again with the
///    same generation (none restarted meanwhile).
///    A failure announces NORMAL again — nothing is lost, the node keeps serving — and throws.
/// 4. Announce LEFT (coordinators drop it from the token ring), record the decommission in the
///    data directory (so a restart does not rejoin with stale data), wait the ring delay so the
///    news spreads, then ask the node to shut down.
///
/// Hints this node still holds for others are dropped with it (their targets miss those writes
/// until repair); the log says how many.
extension ClusterService {
    struct DecommissionOutcome: Sendable {
        var ranges: Int
        var targets: Int
        var mutations: UInt64
        var rows: UInt64
    }

    func decommission() async throws -> DecommissionOutcome {
        guard let g = gossiper else { throw WireError(.unavailable, "this node is starting; retry shortly") }
        let local = g.local
        guard !decommissioning else {
            throw WireError(.invalid, "this node is already leaving the ring (decommission in progress or done)")
        }
        guard g.localState.status == .normal, let tokens = persistedTokens, ring.contains(local) else {
            throw WireError(
                .invalid,
                "this node is \(g.localState.status?.rawValue ?? "JOINING"), not NORMAL; only a node that owns tokens can be decommissioned"
            )
        }
        guard ring.nodeCount >= 2 else {
            throw WireError(
                .invalid, "this is the ring's only node: there is no node to hand its data to; stop it instead")
        }
        let alive = aliveSet(at: now())
        if let other = g.states.values.first(where: {
            $0.node != local && alive.contains($0.node)
                && ($0.status == .leaving || ($0.status == .joining && !$0.tokens.isEmpty))
        }) {
            throw WireError(
                .unavailable,
                "\(other.node.address) is \(other.status?.rawValue ?? "moving"); one node joins or leaves at a time, run decommission again when it is done"
            )
        }
        let planned = replicationFactors.flatMap {
            RangeMovement.decommission(ring: ring, leaving: local, replicationFactor: max(1, min($0, ring.nodeCount)))
        }
        let down = Set(planned.flatMap(\.targets)).filter { !alive.contains($0) }.sorted()
        guard down.isEmpty else {
            throw WireError(
                .unavailable,
                """
                \(down.map { "\($0.address)" }.joined(separator: ", ")) must receive ranges from this node but \
                \(down.count == 1 ? "is" : "are") down; bring \(down.count == 1 ? "it" : "them") back and run decommission again
                """)
        }

        decommissioning = true
        gossiper?.setStatus(.leaving)
        rebuildRing()
        logger.info(
            "decommission: announced LEAVING; waiting the ring delay before streaming",
            metadata: [
                "ring_delay": "\(ringDelay)", "ranges": "\(planned.count)",
            ])
        let outcome: DecommissionOutcome
        do {
            try await Task.sleep(for: ringDelay)
            let generations = try await confirmMovePatiently(.leaving, tokens: nil, patience: ringDelay * 6)
            try await settleAfterConfirmation()
            outcome = try await streamForDecommission(local: local)
            _ = try await confirmMove(.leaving, tokens: nil, expected: generations)
        } catch {
            gossiper?.setStatus(.normal, tokens: tokens)
            rebuildRing()
            decommissioning = false
            logger.error("decommission failed; NORMAL again", metadata: ["error": "\(error)"])
            throw WireError(
                .server,
                "decommission failed while streaming: \(error). This node is NORMAL again and keeps its data; fix the cause and run decommission again"
            )
        }

        gossiper?.setStatus(.left)
        rebuildRing()
        let directory = configuration.dataDirectory
        let note = "left the ring; ranges handed to \(outcome.targets) node(s)"
        do {
            try await replica.threadPool.runIfActive {
                try NodeStateFiles.markDecommissioned(dataDirectory: directory, note: note)
            }
        } catch {
            logger.error("decommission: cannot record it in the data directory", metadata: ["error": "\(error)"])
        }
        let dropped = pendingHints()
        logger.info(
            "decommission: announced LEFT; waiting for gossip to spread it",
            metadata: [
                "mutations": "\(outcome.mutations)", "rows": "\(outcome.rows)", "hints_dropped": "\(dropped)",
            ])
        try? await Task.sleep(for: max(ringDelay, configuration.gossipInterval * 3))
        logger.info("decommission complete; shutting down")
        onDecommissioned()
        return outcome
    }

    /// Streams every range this node replicates to the nodes that gain it, all targets in
    /// parallel; checks the ring did not change meanwhile.
    private func streamForDecommission(local: NodeID) async throws -> DecommissionOutcome {
        let before = ring
        // Per table (its keyspace's factor): the ranges each gaining node receives.
        var jobs: [NodeID: [(table: TableSchema, ranges: [TokenRange])]] = [:]
        var rangeCount = 0
        for table in schema.tables {
            let rf = max(1, min(schema.replicationFactor(keyspace: table.keyspace), before.nodeCount))
            let handoffs = RangeMovement.decommission(ring: before, leaving: local, replicationFactor: rf)
            var byTarget: [NodeID: [TokenRange]] = [:]
            for h in handoffs {
                for t in h.targets { byTarget[t, default: []].append(h.range) }
            }
            for (target, ranges) in byTarget { jobs[target, default: []].append((table, ranges)) }
            rangeCount = max(rangeCount, handoffs.count)
        }
        logger.info("decommission: streaming", metadata: ["ranges": "\(rangeCount)", "targets": "\(jobs.count)"])
        let source = RangeStreamSource(replica: replica, messenger: messenger)
        let logger = self.logger
        var outcome = try await withThrowingTaskGroup(of: StreamRangesDone.self) { group in
            for (target, work) in jobs {
                group.addTask {
                    var total = StreamRangesDone(mutations: 0, rows: 0)
                    for (table, ranges) in work {
                        let done: StreamRangesDone
                        do {
                            done = try await source.send(table: table, ranges: ranges, to: target.address)
                        } catch {
                            throw BootstrapError(
                                "streaming \(ranges.count) range(s) of \(table.qualifiedName) to \(target.address) failed: \(error)"
                            )
                        }
                        total.mutations &+= done.mutations
                        total.rows &+= done.rows
                    }
                    logger.info(
                        "decommission: target done",
                        metadata: [
                            "target": "\(target.address)", "ranges": "\(work.map(\.ranges.count).max() ?? 0)",
                            "mutations": "\(total.mutations)",
                            "rows": "\(total.rows)",
                        ])
                    return total
                }
            }
            var out = DecommissionOutcome(ranges: rangeCount, targets: jobs.count, mutations: 0, rows: 0)
            for try await done in group {
                out.mutations += UInt64(done.mutations)
                out.rows += done.rows
            }
            return out
        }
        guard ring.nodes == before.nodes else {
            throw BootstrapError("the ring changed while streaming (a node joined or left)")
        }
        outcome.ranges = rangeCount
        return outcome
    }
}
