import ConfabEngine
import ConfabRing
import ConfabWire
import Logging
import NIOPosix
import Synchronization

/// This node's part in the cluster, its membership runtime ("ring" names only the `TokenRing`):
/// owns the `Gossiper` (with its failure detector), the current `TokenRing` and the `HintQueue`, drives them with timers, and carries out their actions —
/// sending gossip, persisting, replaying and deleting hints, announcing tokens. The state
/// machines stay pure; this actor is the only place their actions turn into I/O.
///
/// Timers (docs/ring.md § Runtime): a gossip round every `gossipInterval` (1 s), a hint tick
/// every 100 ms, the local load gossiped every 5 s.
///
/// Joining: a node with persisted tokens announces NORMAL at once (a restart). A new node
/// announces JOINING, gossips until it has heard from a peer (or has no seed but itself), waits
/// for live JOINING nodes with smaller ids to finish (so concurrent joiners allocate one after
/// another and balance), then allocates its tokens with `TokenAllocator` against the ring gossip
/// shows. In a brand-new ring (no NORMAL member yet, or `auto_bootstrap = false`) it persists
/// them (temp file, fsync, rename) and announces NORMAL at once. Joining a ring with NORMAL
/// members it bootstraps (`ClusterService+Bootstrap.swift`): announces JOINING with its tokens,
/// waits the ring delay, streams every range it will replicate from the current replicas, and
/// only then persists its tokens and goes NORMAL. Decommission is `ClusterService+Decommission.swift`.
actor ClusterService {
    private enum HintOperation: Sendable {
        /// `durable`, when set, is resumed once the hint is on disk (or could not be written).
        case persist(Hint, durable: CheckedContinuation<Void, Never>? = nil)
        case delete(id: UInt64, target: NodeID)
    }

    let configuration: NodeConfiguration
    let localID: String
    let replica: LocalReplica
    let hints: HintStore
    let messenger: InternodeMessenger
    let logger: Logger
    let metrics = ClusterMetrics()
    /// Called once a decommission completed (LEFT gossiped) and its admin request was answered
    /// (`RequestHandler.answered`): the node should shut down.
    let onDecommissioned: @Sendable () -> Void
    private let origin = ContinuousClock.now
    private let generation: Int64
    var persistedTokens: [Token]?
    var gossiper: Gossiper?
    private var hintQueue: HintQueue
    var ring = TokenRing()
    /// Ranges nodes gain while one joins or leaves, per keyspace replication factor: pending
    /// replicas for writes.
    var pendingRanges: [Int: PendingRanges] = [:]
    /// The bootstrap in progress (streaming ranges before going NORMAL), if any.
    /// The join in progress (`ClusterService+Bootstrap.swift`), or nil.
    var bootstrap: Bootstrap?
    /// Its requests, streams and completion still running (cancelled at shutdown).
    var bootstrapWork: [Task<Void, Never>] = []
    /// A decommission is running (LEAVING, streaming) or done (LEFT).
    var decommissioning = false
    /// The decommission in progress (`ClusterService+Decommission.swift`), or nil.
    var decommissionRun: DecommissionRun?
    /// Peers that refused a connection or did not answer recently: treated as down until then,
    /// so requests do not wait for the failure detector's ~18 rounds to convict them.
    private var unreachableUntil: [NodeID: RingInstant] = [:]
    private var joinStartedAt: RingInstant?
    /// When the "no seed answered" warning was last logged (once per 30 gossip intervals).
    private var lastNoSeedWarning: RingInstant?
    /// The peers saved before this start (`PeerViewFile`), restored into gossip by `run`.
    private var savedView: PeerViewFile?
    /// Restarted with tokens but without a saved view: until a peer is heard from, this node
    /// would see a ring of itself and store every key alone, so data requests are refused.
    private(set) var learningRing = false
    /// The view last handed to the writer, and the write in progress (each waits for the one
    /// before, so an older view never lands after a newer one).
    private var lastSavedView: PeerViewFile?
    private var viewWrite: Task<Void, Never>?
    var rng = SystemRandomNumberGenerator()
    /// The ring as coordinators see it, republished at the end of every actor turn that changes
    /// it (`rebuildRing`, `markUnreachable`) and on each hint tick (100 ms), when an
    /// unreachable mark may have expired. A request reads it under a lock instead of hopping onto
    /// this actor: the hop was a task switch per request, queued behind gossip and hint work.
    /// It is never half-changed: it is replaced whole, after the turn's changes.
    private let published = Mutex<Result<ClusterSnapshot, WireError>>(
        .failure(WireError(.unavailable, "this node is starting and has not joined the ring yet; retry shortly")))
    private let hintOperations: AsyncStream<HintOperation>
    private let hintOperationSink: AsyncStream<HintOperation>.Continuation

    init(
        configuration: NodeConfiguration, localID: String, replica: LocalReplica, hints: HintStore,
        recoveredHints: [HintRef], tokens: [Token]?, savedView: PeerViewFile? = nil, generation: Int64,
        messenger: InternodeMessenger, logger: Logger, onDecommissioned: @escaping @Sendable () -> Void = {}
    ) {
        self.configuration = configuration
        self.onDecommissioned = onDecommissioned
        self.localID = localID
        self.replica = replica
        self.hints = hints
        self.messenger = messenger
        self.logger = logger
        self.generation = generation
        self.persistedTokens = tokens
        self.savedView = savedView
        var hintConfiguration = HintQueue.Configuration()
        hintConfiguration.window = configuration.hintWindow
        hintConfiguration.replayBytesPerSecond = configuration.hintReplayBytesPerSecond
        self.hintQueue = HintQueue(configuration: hintConfiguration, recovered: recoveredHints)
        (hintOperations, hintOperationSink) = AsyncStream.makeStream(of: HintOperation.self)
        metrics.hintsPending.record(recoveredHints.count)
    }

    /// The ring clock: monotonic nanoseconds since this runtime was created.
    nonisolated func now() -> RingInstant {
        RingInstant(nanoseconds: (ContinuousClock.now - origin).ringNanoseconds)
    }

    // MARK: Running

    /// Joins the ring as the node listening at `address` and runs the timers until cancelled.
    /// `onStarted` runs once the local state exists and, for a node with persisted tokens or no
    /// seed but itself, it is already NORMAL — so a lone node serves as soon as it says so.
    func run(localAddress address: NodeAddress, onStarted: @Sendable () -> Void = {}) async {
        let local = NodeID(id: localID, address: address)
        var gossipConfiguration = Gossiper.Configuration()
        gossipConfiguration.clusterName = configuration.clusterName
        gossipConfiguration.interval = configuration.gossipInterval
        gossipConfiguration.failureDetector.threshold = configuration.phiConvictThreshold
        gossipConfiguration.failureDetector.initialInterval = configuration.gossipInterval * 2
        gossipConfiguration.failureDetector.maxInterval = max(configuration.gossipInterval * 2, .seconds(2))
        var states: [ApplicationStateKey: String] = [.address: address.description]
        // Replication factors per keyspace: peers compare them (see `checkSchema`).
        states[.schema] = configuration.schema.replicationSignature
        if let tokens = persistedTokens {
            states[.tokens] = tokens.sorted().map(\.description).joined(separator: ",")
            states[.status] = NodeStatus.normal.rawValue
        } else {
            states[.status] = NodeStatus.joining.rawValue
            joinStartedAt = now()
        }
        gossiper = Gossiper(
            local: local, generation: generation, seeds: configuration.seeds,
            applicationStates: states, configuration: gossipConfiguration)
        if persistedTokens != nil {
            if let view = savedView {
                gossiper?.restore(view.endpointStates, now: now())
                lastSavedView = view
            } else if configuration.seeds.contains(where: { $0 != address }) {
                learningRing = true
                logger.warning(
                    "restarted without a saved ring view: refusing data requests until a peer answers",
                    metadata: ["seeds": "\(configuration.seeds)"])
            }
        }
        savedView = nil
        rebuildRing()
        logger.info(
            "joining the ring",
            metadata: [
                "node": "\(local)", "generation": "\(generation)",
                "tokens": "\(persistedTokens.map { "\($0.count) persisted" } ?? "to allocate")",
                "saved_peers": "\(lastSavedView?.peers.count ?? 0)",
                "pending_hints": "\(hintQueue.totalPending)",
            ])
        await refreshLoad()
        await advanceJoin()
        onStarted()

        let interval = configuration.gossipInterval
        await withDiscardingTaskGroup { group in
            group.addTask { await self.every(interval) { await $0.gossipRound() } }
            group.addTask { await self.every(.milliseconds(100)) { await $0.hintTick() } }
            group.addTask { await self.every(.seconds(5)) { await $0.refreshLoad() } }
            group.addTask { await self.runHintOperations() }
        }
        for work in bootstrapWork + (decommissionRun?.work ?? []) { work.cancel() }
        decommissionRun?.waiter?.resume(throwing: WireError(.unavailable, "the node shut down during the decommission"))
        decommissionRun?.waiter = nil
        await flushRingView()
    }

    private nonisolated func every(_ interval: Duration, _ body: @Sendable (ClusterService) async -> Void) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            await body(self)
        }
    }

    /// Persists and deletes hints one at a time, in the order the queue decided them, so a
    /// hint's delete never overtakes its persist. Ends when the task is cancelled.
    private nonisolated func runHintOperations() async {
        await withTaskCancellationHandler {
            for await operation in hintOperations {
                do {
                    switch operation {
                    case .persist(let hint, let durable):
                        defer { durable?.resume() }
                        try await hints.persist(hint)
                    case .delete(let id, let target): try await hints.delete(id: id, target: target)
                    }
                } catch {
                    logger.error("hint store write failed", metadata: ["error": "\(error)"])
                }
            }
        } onCancel: {
            hintOperationSink.finish()
        }
    }

    // MARK: Gossip

    private func gossipRound() async {
        guard let actions = gossiper?.onGossipTick(now: now(), using: &rng) else { return }
        carryOut(actions)
        await advanceJoin()
    }

    /// A gossip message from a peer (one-way; any reply goes out as its own message).
    func receive(_ message: GossipMessage) {
        guard let actions = gossiper?.receive(message, now: now()) else { return }
        carryOut(actions)
    }

    private func carryOut(_ actions: [GossipAction]) {
        var changed = false
        for action in actions {
            switch action {
            case .send(let message, let address):
                messenger.send(.gossip(message), to: address)
            case .event(let event):
                changed = true
                switch event {
                case .up(let node), .restarted(let node):
                    unreachableUntil[node] = nil
                    logger.info("peer up", metadata: ["node": "\(node)"])
                    if learningRing {
                        // The first answer carries every state the peer knows: the whole ring.
                        learningRing = false
                        logger.info("learned the ring from a peer; serving", metadata: ["peer": "\(node)"])
                    }
                case .down(let node):
                    logger.info("peer down", metadata: ["node": "\(node)"])
                case .joined(let node, let state):
                    checkSchema(state[.schema], of: node)
                case .stateChanged(let node, .schema, let value):
                    checkSchema(value, of: node)
                case .statusChanged(let node, let status):
                    logger.info("peer status", metadata: ["node": "\(node)", "status": "\(status.rawValue)"])
                case .left(let node):
                    dropHints(for: node)
                default:
                    break
                }
            }
        }
        if changed { rebuildRing() }
    }

    func rebuildRing() {
        guard let g = gossiper else { return }
        ring = g.tokenRing()
        let joining = g.states.values.filter { $0.status == .joining && !$0.tokens.isEmpty }.map {
            (node: $0.node, tokens: $0.tokens)
        }
        let leaving = g.nodes(withStatus: .leaving)
        pendingRanges = [:]
        if !joining.isEmpty || !leaving.isEmpty {
            for rf in replicationFactors {
                pendingRanges[rf] = PendingRanges(ring: ring, joining: joining, leaving: leaving, replicationFactor: rf)
            }
        }
        metrics.liveNodes.record(g.liveMembers.count + 1)
        metrics.downNodes.record(g.unreachableMembers.count)
        saveViewIfChanged()
        publish()
    }

    /// Persists the peers gossip knows (`PeerViewFile`) when they differ from the last saved
    /// view, off the actor, one write after another.
    private func saveViewIfChanged() {
        guard let g = gossiper else { return }
        let view = PeerViewFile(gossiper: g)
        if let last = lastSavedView, last.sameBytes(as: view) { return }
        lastSavedView = view
        let previous = viewWrite
        let pool = replica.threadPool
        let directory = configuration.dataDirectory
        let logger = self.logger
        viewWrite = Task {
            await previous?.value
            do {
                try await pool.runIfActive { try view.save(dataDirectory: directory) }
            } catch {
                logger.warning("cannot save the ring view", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Waits for the ring view writes scheduled so far (tests, shutdown).
    func flushRingView() async { await viewWrite?.value }

    /// Moves a JOINING node to NORMAL once gossip has settled (see the type's documentation).
    private func advanceJoin() async {
        guard let started = joinStartedAt, let g = gossiper else { return }
        let elapsed = now() - started
        let interval = configuration.gossipInterval
        let otherSeeds = configuration.seeds.filter { $0 != g.local.address }
        // Every JOINING node with a smaller id, heard of first- or second-hand: the allocator is
        // deterministic for a given ring, so two nodes allocating against the same view would
        // pick the same tokens.
        let earlierJoiners = g.nodes(withStatus: .joining).filter { $0 != g.local && $0 < g.local }
        let decision = JoinDecision.decide(
            isSeed: configuration.seeds.contains(g.local.address), otherSeeds: otherSeeds.count,
            hasLivePeers: !g.liveMembers.isEmpty, earlierJoiners: earlierJoiners.count,
            intervalsElapsed: Int((elapsed / interval).rounded(.down)))
        switch decision {
        case .wait:
            return
        case .waitForASeed:
            if lastNoSeedWarning.map({ now() - $0 >= interval * JoinDecision.aloneAfterIntervals }) ?? true {
                lastNoSeedWarning = now()
                logger.warning(
                    """
                    no seed has answered for \(elapsed); this node is not a seed, so it stays JOINING and serves \
                    nothing rather than form a ring of its own. Check that the seeds run and are reachable, and that \
                    this node has the ring's cluster secret (--cluster-secret-file): seeds refuse a node with another one
                    """, metadata: ["seeds": "\(otherSeeds)"])
            }
            return
        case .formAlone:
            logger.warning("no other seed answered; this seed forms a ring alone", metadata: ["seeds": "\(otherSeeds)"])
        case .join:
            break
        }
        joinStartedAt = nil
        let existing = g.tokenRing()
        let allocator = TokenAllocator(
            tokensPerNode: configuration.vnodes, replicationFactor: configuration.replicationFactor)
        // A small random nudge per token (at most 2^-24 of the ring) keeps two joiners that did
        // see the same ring after all from claiming identical tokens.
        let tokens = allocator.allocate(for: g.local, in: g.tokenRing(), using: &rng).map {
            Token($0.value &+ Int64.random(in: -(1 << 39)...(1 << 39), using: &rng))
        }
        if !existing.isEmpty && configuration.autoBootstrap {
            beginBootstrap(tokens: tokens)
            return
        }
        let directory = configuration.dataDirectory
        do {
            try await replica.threadPool.runIfActive { try NodeStateFiles.saveTokens(tokens, dataDirectory: directory) }
        } catch {
            logger.error("cannot persist tokens; staying JOINING", metadata: ["error": "\(error)"])
            joinStartedAt = started
            return
        }
        persistedTokens = tokens
        gossiper?.setStatus(.normal, tokens: tokens)
        rebuildRing()
        logger.info("normal", metadata: ["tokens": "\(tokens.count)", "ring_nodes": "\(ring.nodeCount)"])
    }

    private func refreshLoad() async {
        guard let bytes = try? await replica.diskBytes() else { return }
        gossiper?.setApplicationState(.load, String(bytes))
        // Gossiped so `confab ring status` through any node shows which node needs a repair.
        if let quarantined = try? await replica.quarantinedTables(),
            gossiper?.localState[.quarantined] != String(quarantined),
            quarantined > 0 || gossiper?.localState[.quarantined] != nil
        {
            gossiper?.setApplicationState(.quarantined, String(quarantined))
        }
    }

    // MARK: Requests

    /// This node's identity in the ring (id and gossip address), nil until the ring runtime runs.
    func localNode() -> NodeID? { gossiper?.local }

    /// The ring as a coordinator sees it now (the last published snapshot). Throws `unavailable`
    /// while no node is NORMAL.
    nonisolated func snapshot() throws(WireError) -> ClusterSnapshot {
        try published.withLock { $0 }.get()
    }

    /// Replaces the published snapshot with the ring as it is now.
    func publish() {
        let result: Result<ClusterSnapshot, WireError>
        do { result = .success(try currentSnapshot()) } catch { result = .failure(error) }
        published.withLock { $0 = result }
    }

    private func currentSnapshot() throws(WireError) -> ClusterSnapshot {
        guard let g = gossiper else {
            throw WireError(.unavailable, "this node is starting and has not joined the ring yet; retry shortly")
        }
        guard !learningRing else {
            throw WireError(
                .unavailable,
                """
                this node restarted without a saved ring view and is still learning its ring from the seeds \
                (\(configuration.seeds.map(\.description).joined(separator: ", "))); retry shortly
                """)
        }
        guard !ring.isEmpty else {
            throw WireError(
                .unavailable,
                "no node of the ring is NORMAL yet (this node is \(g.localState.status?.rawValue.lowercased() ?? "joining")); retry shortly"
            )
        }
        let alive = aliveSet(at: now())
        let joining = g.nodes(withStatus: .joining).filter { alive.contains($0) && !ring.contains($0) }
        return ClusterSnapshot(
            local: g.local, ring: ring, replicationFactor: configuration.replicationFactor,
            alive: alive, joining: joining, pending: pendingRanges)
    }

    func aliveSet(at instant: RingInstant) -> Set<NodeID> {
        guard let g = gossiper else { return [] }
        var alive = Set(g.liveMembers.filter { (unreachableUntil[$0] ?? .zero) <= instant })
        alive.insert(g.local)
        return alive
    }

    /// A peer refused a connection or did not answer: count it as down for a short while.
    func markUnreachable(_ node: NodeID) {
        guard node != gossiper?.local else { return }
        unreachableUntil[node] = now() + max(.seconds(2), configuration.gossipInterval * 2)
        publish()
    }

    /// Keeps a hint for a replica that missed a write (the queue applies the hint window), and
    /// returns once the hint is durable: the write is acknowledged after this, and a hint that
    /// only sat in memory would be lost with the coordinator. Goes through the ordered hint
    /// operations, so the hint's delete still never overtakes its persist.
    func storeHint(_ mutation: Mutation, for target: NodeID) async {
        let actions = hintQueue.store(mutation, for: target, targetDownSince: gossiper?.downSince(target), now: now())
        if actions.isEmpty { metrics.hintsDropped.increment() }
        metrics.hintsPending.record(hintQueue.totalPending)
        for case .persist(let hint) in actions {
            metrics.hintsStored.increment()
            await withCheckedContinuation { (durable: CheckedContinuation<Void, Never>) in
                if case .terminated = hintOperationSink.yield(.persist(hint, durable: durable)) { durable.resume() }
            }
        }
    }

    // MARK: Hints

    /// Deletes the hints for a node that left the ring (see `HintQueue.dropHints`).
    private func dropHints(for node: NodeID) {
        let actions = hintQueue.dropHints(for: node)
        guard !actions.isEmpty else { return }
        logger.info("dropping hints for a node that left", metadata: ["node": "\(node)", "hints": "\(actions.count)"])
        for case .delete(let id, let target) in actions { hintOperationSink.yield(.delete(id: id, target: target)) }
        metrics.hintsPending.record(hintQueue.totalPending)
    }

    private func hintTick() {
        bootstrapTick()
        decommissionTick()
        publish()
        guard hintQueue.totalPending > 0 else { return }
        // Hints recovered at start for a node that left meanwhile (no `.left` event comes for it).
        for target in hintQueue.targets where gossiper?.state(of: target)?.status == .left { dropHints(for: target) }
        let instant = now()
        let alive = aliveSet(at: instant)
        let actions = hintQueue.onTick(now: instant, isAlive: { alive.contains($0) })
        for action in actions {
            switch action {
            case .persist(let hint): hintOperationSink.yield(.persist(hint, durable: nil))
            case .delete(let id, let target): hintOperationSink.yield(.delete(id: id, target: target))
            case .replay(let hint): replay(hint)
            }
        }
        if !actions.isEmpty { metrics.hintsPending.record(hintQueue.totalPending) }
    }

    /// Loads the hint's mutation from the hint store (the queue keeps none in memory) and sends it.
    private func replay(_ hint: HintRef) {
        let address = gossiper?.state(of: hint.target)?.node.address ?? hint.target.address
        let messenger = self.messenger
        let store = hints
        let age = now() - hint.createdAt
        Task {
            do {
                guard let mutation = try await store.load(id: hint.id, target: hint.target) else {
                    // Not on disk: its persist is still under way (retry), or failed long ago.
                    if age > .seconds(60) { return self.hintMissing(hint.id) }
                    throw WireError(.server, "hint \(hint.id) is not in the hint store yet")
                }
                let reply = try await messenger.request(
                    .hintReplay(HintReplay(id: hint.id, mutation: mutation)),
                    to: address, timeout: .seconds(5))
                guard case .hintReplayAck(hint.id) = reply else {
                    throw WireError(.protocolError, "\(address) answered HintReplay with \(reply.type)")
                }
                self.replayAcknowledged(hint.id)
            } catch {
                self.replayFailed(hint.id, error: error)
            }
        }
    }

    private func hintMissing(_ id: UInt64) {
        logger.error(
            "a hint is missing from the hint store (its write failed?); its target misses that write until repair",
            metadata: ["hint": "\(id)"])
        for case .delete(let id, let target) in hintQueue.forget(id: id) {
            hintOperationSink.yield(.delete(id: id, target: target))
        }
        metrics.hintsPending.record(hintQueue.totalPending)
    }

    private func replayAcknowledged(_ id: UInt64) {
        for case .delete(let id, let target) in hintQueue.onReplayAck(id: id) {
            metrics.hintsReplayed.increment()
            hintOperationSink.yield(.delete(id: id, target: target))
        }
        metrics.hintsPending.record(hintQueue.totalPending)
    }

    private func replayFailed(_ id: UInt64, error: any Error) {
        metrics.hintReplayFailures.increment()
        logger.debug("hint replay failed", metadata: ["hint": "\(id)", "error": "\(error)"])
        hintQueue.onReplayFailed(id: id)
    }

    /// Hints waiting for `nodeID` (tests and status).
    func pendingHints(for nodeID: String? = nil) -> Int {
        guard let nodeID else { return hintQueue.totalPending }
        return hintQueue.pendingCount(for: NodeID(id: nodeID, host: "", port: 0))
    }

    // MARK: Status

    /// Every member as this node sees it: state, up/down, gossiped load, tokens, effective
    /// ownership at the replication factor. Sorted by address.
    func status() -> RingStatus {
        let rf = configuration.replicationFactor
        guard let g = gossiper else {
            return RingStatus(clusterName: configuration.clusterName, replicationFactor: rf, nodes: [])
        }
        let alive = aliveSet(at: now())
        let ownership = ring.effectiveOwnership(replicationFactor: max(1, min(rf, ring.nodeCount)))
        // A node that left is no member any more (it stays in gossip a while so every node learns it).
        let nodes = g.states.values.filter { $0.status != .left }.map { s -> RingNodeStatus in
            let address = s[.address].flatMap { NodeAddress(hostPort: $0) } ?? s.node.address
            return RingNodeStatus(
                state: (s.status ?? .joining).rawValue.lowercased(), isUp: alive.contains(s.node),
                id: s.node.id, host: address.host, port: UInt16(clamping: address.port),
                loadBytes: UInt64(clamping: s.load ?? 0), tokens: s.tokens.count,
                ownership: ownership[s.node] ?? 0, tokenValues: s.tokens.map(\.value),
                generation: s.heartbeat.generation,
                quarantinedTables: s[.quarantined].flatMap { Int($0) } ?? 0)
        }
        return RingStatus(
            clusterName: configuration.clusterName, replicationFactor: rf,
            nodes: nodes.sorted { ($0.host, $0.port, $0.id) < ($1.host, $1.port, $1.id) })
    }
}

extension Duration {
    var ringNanoseconds: Int64 {
        let (s, atto) = components
        return s &* 1_000_000_000 &+ atto / 1_000_000_000
    }
}
