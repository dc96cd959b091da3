import ConfabRing
import ConfabWire

/// Decommission: the node's shell around `Decommission` (ConfabRing). `decommission()` checks
/// the machine's preconditions, starts it and waits for its end; the actor carries out its
/// actions — gossip LEAVING, ask the members (`askMoveStatus`), stream each gaining node its
/// ranges (ReplicaWrites through `RangeStreamSource`, acknowledged durably), gossip LEFT and record
/// it in the data directory (so a restart does not rejoin with stale data), shut down — and feeds
/// it the answers, and the clock every hint tick.
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

    /// A decommission in progress: the machine, the tokens to go back to, what the streams moved,
    /// and the admin request waiting for the end.
    struct DecommissionRun {
        var machine: Decommission
        var tokens: [Token]
        var outcome = DecommissionOutcome(ranges: 0, targets: 0, mutations: 0, rows: 0)
        var waiter: CheckedContinuation<DecommissionOutcome, any Error>?
        var work: [Task<Void, Never>] = []
    }

    var decommissionTiming: Decommission.Timing {
        Decommission.Timing(
            ringDelay: ringDelay, confirmInterval: configuration.gossipInterval,
            confirmTimeout: configuration.writeTimeout + .milliseconds(500), confirmPatience: ringDelay * 6,
            settle: configuration.writeTimeout + .milliseconds(500),
            streamTimeout: Self.streamRequestTimeout * max(1, schema.tables.count) + .seconds(5),
            leftWait: max(ringDelay, configuration.gossipInterval * 3))
    }

    func decommission() async throws -> DecommissionOutcome {
        guard let g = gossiper, let view = moveView() else {
            throw WireError(.unavailable, "this node is starting; retry shortly")
        }
        guard !decommissioning else {
            throw WireError(.invalid, "this node is already leaving the ring (decommission in progress or done)")
        }
        guard let tokens = persistedTokens else {
            throw WireError(
                .invalid,
                "this node is \(g.localState.status?.rawValue ?? "JOINING"), not NORMAL; only a node that owns tokens can be decommissioned"
            )
        }
        switch Decommission.refusal(
            view: view, isNormal: g.localState.status == .normal, replicationFactors: replicationFactors)
        {
        case .invalid(let reason)?:
            throw WireError(.invalid, "this node is \(g.localState.status?.rawValue ?? "JOINING"): \(reason)")
        case .unavailable(let reason)?:
            throw WireError(.unavailable, reason)
        case nil:
            break
        }
        decommissioning = true
        var machine = Decommission(replicationFactors: replicationFactors, timing: decommissionTiming)
        let actions = machine.start(now: now())
        return try await withCheckedThrowingContinuation { waiter in
            decommissionRun = DecommissionRun(machine: machine, tokens: tokens, waiter: waiter)
            carryOut(actions)
        }
    }

    /// Runs one step of the decommission (an answer or the clock), then carries out its actions.
    func decommissionStep(_ step: (inout Decommission, RingInstant, MoveView) -> [Decommission.Action]) {
        guard var run = decommissionRun, !run.machine.isFinished, let view = moveView() else { return }
        let actions = step(&run.machine, now(), view)
        decommissionRun = run
        carryOut(actions)
    }

    func decommissionTick() {
        decommissionStep { machine, now, view in machine.onTick(now: now, view: view) }
    }

    private func carryOut(_ actions: [Decommission.Action]) {
        for action in actions {
            switch action {
            case .announceLeaving:
                gossiper?.setStatus(.leaving)
                rebuildRing()
                logger.info(
                    "decommission: announced LEAVING; waiting the ring delay before streaming",
                    metadata: ["ring_delay": "\(ringDelay)"])
            case .confirm(let round, let members):
                guard let local = gossiper?.local else { return }
                let timeout = configuration.writeTimeout
                for member in members {
                    track {
                        let answer = await self.askMoveStatus(
                            member, sees: local, as: .leaving, tokens: nil, timeout: timeout)
                        await self.decommissionStep { machine, now, view in
                            machine.onConfirm(round: round, member: member, answer, now: now, view: view)
                        }
                    }
                }
            case .stream(let round, let handoffs):
                startStreams(round: round, handoffs: handoffs)
            case .announceLeft:
                announceLeft()
            case .shutDown:
                logger.info("decommission complete; shutting down once the operator has the answer")
                decommissionRun?.waiter?.resume(returning: decommissionRun!.outcome)
                decommissionRun?.waiter = nil
            case .revert(let reason):
                if let tokens = decommissionRun?.tokens { gossiper?.setStatus(.normal, tokens: tokens) }
                rebuildRing()
                decommissioning = false
                for work in decommissionRun?.work ?? [] { work.cancel() }
                logger.error("decommission failed; NORMAL again", metadata: ["error": "\(reason)"])
                decommissionRun?.waiter?.resume(
                    throwing: WireError(
                        .server,
                        "decommission failed: \(reason). This node is NORMAL again and keeps its data; fix the cause and run decommission again"
                    ))
                decommissionRun = nil
            case .note(let text):
                logger.info("\(text)")
            }
        }
    }

    /// Each gaining node receives its handoffs (every table of their keyspaces) one after
    /// another; targets receive in parallel.
    private func startStreams(round: UInt64, handoffs: [Decommission.Handoff]) {
        let schema = self.schema
        let source = RangeStreamSource(replica: replica, messenger: messenger)
        let logger = self.logger
        let byTarget = Dictionary(grouping: handoffs, by: \.target)
        let ranges = handoffs.map(\.ranges.count).max() ?? 0
        decommissionRun?.outcome.ranges = ranges
        decommissionRun?.outcome.targets = byTarget.count
        logger.info("decommission: streaming", metadata: ["ranges": "\(ranges)", "targets": "\(byTarget.count)"])
        for (target, work) in byTarget {
            track {
                var total = StreamRangesDone(mutations: 0, rows: 0)
                do {
                    for handoff in work {
                        for table in schema.tables
                        where schema.replicationFactor(keyspace: table.keyspace) == handoff.replicationFactor {
                            let done = try await source.send(table: table, ranges: handoff.ranges, to: target.address)
                            total.mutations &+= done.mutations
                            total.rows &+= done.rows
                        }
                    }
                } catch {
                    await self.decommissionStep { machine, _, _ in
                        machine.onStreamFailed(round: round, target: target, reason: "\(error)")
                    }
                    return
                }
                logger.info(
                    "decommission: target done",
                    metadata: [
                        "target": "\(target.address)", "mutations": "\(total.mutations)", "rows": "\(total.rows)",
                    ])
                await self.decommissionStreamed(total, round: round, target: target)
            }
        }
    }

    private func decommissionStreamed(_ done: StreamRangesDone, round: UInt64, target: NodeID) {
        decommissionRun?.outcome.mutations += UInt64(done.mutations)
        decommissionRun?.outcome.rows += done.rows
        decommissionStep { machine, now, view in
            machine.onStreamDone(round: round, target: target, now: now, view: view)
        }
    }

    private func announceLeft() {
        gossiper?.setStatus(.left)
        rebuildRing()
        let directory = configuration.dataDirectory
        let note = "left the ring; ranges handed to \(decommissionRun?.outcome.targets ?? 0) node(s)"
        let replica = self.replica
        let logger = self.logger
        track {
            do {
                try await replica.threadPool.runIfActive {
                    try NodeStateFiles.markDecommissioned(dataDirectory: directory, note: note)
                }
            } catch {
                logger.error("decommission: cannot record it in the data directory", metadata: ["error": "\(error)"])
            }
        }
        logger.info(
            "decommission: announced LEFT; waiting for gossip to spread it",
            metadata: [
                "mutations": "\(decommissionRun?.outcome.mutations ?? 0)",
                "rows": "\(decommissionRun?.outcome.rows ?? 0)",
                "hints_dropped": "\(pendingHints())",
            ])
    }

    private func track(_ body: @escaping @Sendable () async -> Void) {
        decommissionRun?.work.append(Task { await body() })
    }
}
