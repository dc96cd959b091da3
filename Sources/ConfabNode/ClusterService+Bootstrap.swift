import ConfabRing
import ConfabWire

/// Bootstrap: the node's shell around `Bootstrap` (ConfabRing; the ring simulation runs the same
/// machine). The machine decides; this carries out its actions — gossip JOINING, ask the members
/// for their view (`askMoveStatus`), stream from the sources (StreamRangesRequest, 0x58, per table
/// of each job's keyspaces), complete (flush, persist the tokens, NORMAL) — and feeds it the
/// answers, and the clock every hint tick (100 ms).
///
/// A node killed while bootstrapping has no tokens file, so its next start bootstraps afresh.
extension ClusterService {
    var ringDelay: Duration { configuration.ringDelay ?? configuration.gossipInterval * 5 }

    var schema: SchemaRegistry { configuration.schema }

    /// Every keyspace's configured factor (movements are planned per factor).
    var replicationFactors: [Int] {
        Array(Set(configuration.schema.keyspaces.map(\.replicationFactor) + [configuration.replicationFactor])).sorted()
    }

    /// A StreamRangesRequest may take this long per table; a source's whole share has the
    /// machine's `streamTimeout`.
    static let streamRequestTimeout: Duration = .seconds(600)

    var bootstrapTiming: Bootstrap.Timing {
        Bootstrap.Timing(
            ringDelay: ringDelay, confirmInterval: configuration.gossipInterval,
            // Each member's Status request times out after the write timeout; the round a little later.
            confirmTimeout: configuration.writeTimeout + .milliseconds(500),
            settle: configuration.writeTimeout + .milliseconds(500),
            streamTimeout: Self.streamRequestTimeout * max(1, schema.tables.count) + .seconds(5))
    }

    func beginBootstrap(tokens: [Token]) {
        var machine = Bootstrap(tokens: tokens, replicationFactors: replicationFactors, timing: bootstrapTiming)
        let actions = machine.start(now: now())
        bootstrap = machine
        carryOut(actions)
        logger.info(
            "bootstrap: announced JOINING with tokens; waiting the ring delay before streaming",
            metadata: [
                "tokens": "\(tokens.count)", "ring_nodes": "\(ring.nodeCount)", "ring_delay": "\(ringDelay)",
            ])
    }

    /// What the machine sees: the gossiped states, liveness as requests see it, the token ring.
    func moveView() -> MoveView? {
        guard let g = gossiper else { return nil }
        let alive = aliveSet(at: now())
        return MoveView(local: g.local, states: Array(g.states.values), isAlive: { alive.contains($0) }, ring: ring)
    }

    /// Runs one step of the bootstrap (an answer or the clock), then carries out its actions.
    func bootstrapStep(_ step: (inout Bootstrap, RingInstant, MoveView) -> [Bootstrap.Action]) {
        guard var machine = bootstrap, !machine.isDone, let view = moveView() else { return }
        let actions = step(&machine, now(), view)
        bootstrap = machine
        carryOut(actions)
    }

    func bootstrapTick() {
        bootstrapStep { machine, now, view in machine.onTick(now: now, view: view) }
    }

    private func carryOut(_ actions: [Bootstrap.Action]) {
        for action in actions {
            switch action {
            case .announceJoining(let tokens):
                gossiper?.setStatus(.joining, tokens: tokens)
                rebuildRing()
            case .confirm(let round, let members):
                guard let local = gossiper?.local, let tokens = bootstrap?.tokens else { return }
                let timeout = configuration.writeTimeout
                for member in members {
                    track {
                        let answer = await self.askMoveStatus(
                            member, sees: local, as: .joining, tokens: tokens, timeout: timeout)
                        await self.bootstrapStep { machine, now, view in
                            machine.onConfirm(round: round, member: member, answer, now: now, view: view)
                        }
                    }
                }
            case .stream(let round, let jobs):
                startStreams(round: round, jobs: jobs)
            case .complete(let tokens):
                complete(tokens: tokens)
            case .note(let text):
                logger.warning("\(text)", metadata: ["attempts": "\(bootstrap?.attempts ?? 0)"])
            }
        }
    }

    /// Each source streams its jobs (every table of the job's keyspaces) one after another;
    /// sources work in parallel.
    private func startStreams(round: UInt64, jobs: [Bootstrap.StreamJob]) {
        guard let local = gossiper?.local else { return }
        let schema = self.schema
        let messenger = self.messenger
        let logger = self.logger
        let bySource = Dictionary(grouping: jobs, by: \.source)
        logger.info(
            "bootstrap: streaming",
            metadata: [
                "attempt": "\(bootstrap?.attempts ?? 0)", "ranges": "\(jobs.map(\.ranges.count).max() ?? 0)",
                "sources": "\(bySource.count)", "tables": "\(schema.tables.count)",
            ])
        for (source, work) in bySource {
            track {
                var mutations: UInt32 = 0
                var rows: UInt64 = 0
                do {
                    for job in work {
                        for table in schema.tables
                        where schema.replicationFactor(keyspace: table.keyspace) == job.replicationFactor {
                            let request = StreamRangesRequest(
                                keyspace: table.keyspace, table: table.name, target: local.address, ranges: job.ranges)
                            let reply = try await messenger.request(
                                .streamRanges(request), to: source.address, timeout: Self.streamRequestTimeout)
                            guard case .streamRangesDone(let done) = reply else {
                                throw BootstrapError(
                                    "\(source.address) answered StreamRangesRequest with \(reply.type)")
                            }
                            mutations &+= done.mutations
                            rows &+= done.rows
                        }
                    }
                } catch {
                    await self.bootstrapStep { machine, now, _ in
                        machine.onStreamFailed(round: round, source: source, reason: "\(error)", now: now)
                    }
                    return
                }
                logger.info(
                    "bootstrap: source done",
                    metadata: ["source": "\(source.address)", "mutations": "\(mutations)", "rows": "\(rows)"])
                await self.bootstrapStep { machine, now, view in
                    machine.onStreamDone(round: round, source: source, now: now, view: view)
                }
            }
        }
    }

    /// Makes the streamed data durable, persists the tokens (off the actor), then announces NORMAL.
    private func complete(tokens: [Token]) {
        let replica = self.replica
        let directory = configuration.dataDirectory
        track {
            do {
                try await replica.flush()
                try await replica.threadPool.runIfActive {
                    try NodeStateFiles.saveTokens(tokens, dataDirectory: directory)
                }
            } catch {
                await self.bootstrapStep { machine, now, _ in machine.onCompleteFailed(reason: "\(error)", now: now) }
                return
            }
            await self.bootstrapCompleted(tokens: tokens)
        }
    }

    private func bootstrapCompleted(tokens: [Token]) {
        persistedTokens = tokens
        gossiper?.setStatus(.normal, tokens: tokens)
        rebuildRing()
        bootstrap?.onCompleted()
        bootstrapWork = []
        logger.info(
            "bootstrap complete: normal", metadata: ["tokens": "\(tokens.count)", "ring_nodes": "\(ring.nodeCount)"])
    }

    /// Runs bootstrap work that the node's shutdown cancels.
    private func track(_ body: @escaping @Sendable () async -> Void) {
        bootstrapWork.append(Task { await body() })
    }
}

/// Why a bootstrap stream step stopped (the machine logs it and retries; `Bootstrap` itself
/// remembers which source failed).
struct BootstrapError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
