/// Cluster membership by gossip, as a state machine: clock ticks and messages in, messages to send
/// and membership events out. No I/O; the shell schedules `onGossipTick` once per `interval`.
///
/// Each round (Cassandra's `Gossiper.GossipTask`):
/// 1. bump the local heartbeat version;
/// 2. send a Syn with digests of every known endpoint to one random live peer;
/// 3. with probability `unreachable / (live + 1)` also to one random unreachable peer, so a
///    partition heals without waiting for the peer;
/// 4. if the live peer was not a seed, or fewer peers are live than there are seeds, also to a
///    random seed with probability `seeds / (live + unreachable)` (always when nobody is live),
///    so partitioned groups find each other through the seeds;
/// 5. run the failure detector over every endpoint and convict those whose phi is above the
///    threshold.
///
/// Guarantees: states only move forward — by generation, then by version per value — so messages
/// may be lost, duplicated or reordered; every node's view converges to the newest state of every
/// live node once the network lets them exchange. Liveness is a local judgement (never gossiped).
///
/// Deviations from Cassandra, both for simplicity: an endpoint learned second-hand starts as
/// unreachable and is marked up when its heartbeat is seen to advance (Cassandra sends an Echo
/// first); an Ack also carries endpoints the initiator did not mention, which speeds up first
/// contact.
package struct Gossiper: Sendable {
    package struct Configuration: Sendable {
        /// Messages from other clusters are dropped.
        package var clusterName: String = "confab"
        /// How often the shell should call `onGossipTick` (Cassandra: 1 s).
        package var interval: Duration = .seconds(1)
        package var failureDetector = PhiAccrualFailureDetector.Configuration()
        /// How long a LEFT node stays in gossip before it is evicted (Cassandra: 3 days).
        package var leftRetention: Duration = .seconds(3 * 24 * 3600)
        /// After eviction, gossip about the node is ignored this long, so a stale copy on another
        /// node does not bring it back (Cassandra's QUARANTINE_DELAY, 60 s).
        package var quarantineDelay: Duration = .seconds(60)
        package init() {}
    }

    /// This node's local judgement of an endpoint (never gossiped).
    struct View: Sendable {
        var isAlive: Bool
        var downSince: RingInstant?
        var leftAt: RingInstant?
    }

    package let configuration: Configuration
    package let local: NodeID
    /// Every endpoint known, this node included.
    package internal(set) var states: [NodeID: EndpointState]
    package internal(set) var failureDetector: PhiAccrualFailureDetector
    /// Seed addresses (this node's own address is ignored if listed).
    package var seeds: [NodeAddress]
    var views: [NodeID: View] = [:]
    var quarantine: [NodeID: RingInstant] = [:]
    /// The single version counter for the heartbeat and every local application state.
    private var version: Int64

    /// - Parameters:
    ///   - generation: must grow across restarts of this node (the shell uses the start time in
    ///     seconds, as Cassandra does, or a counter kept in the data directory).
    ///   - applicationStates: initial local states (status, tokens, address …).
    package init(
        local: NodeID, generation: Int64, seeds: [NodeAddress],
        applicationStates: [ApplicationStateKey: String] = [:],
        configuration: Configuration = Configuration()
    ) {
        self.local = local
        self.configuration = configuration
        self.seeds = seeds.filter { $0 != local.address }
        self.failureDetector = PhiAccrualFailureDetector(configuration: configuration.failureDetector)
        var v: Int64 = 0
        var app: [ApplicationStateKey: VersionedValue] = [:]
        for (k, value) in applicationStates.sorted(by: { $0.key < $1.key }) {
            v += 1
            app[k] = VersionedValue(value, version: v)
        }
        v += 1
        version = v
        states = [
            local: EndpointState(
                node: local, heartbeat: HeartbeatState(generation: generation, version: v),
                applicationStates: app)
        ]
    }

    // MARK: Local state

    package var localState: EndpointState { states[local]! }
    package var generation: Int64 { localState.heartbeat.generation }

    /// Sets one of this node's application states; it spreads with the next rounds.
    package mutating func setApplicationState(_ key: ApplicationStateKey, _ value: String) {
        version += 1
        states[local]!.applicationStates[key] = VersionedValue(value, version: version)
    }

    /// Announces a status, and the tokens with it when given (tokens first, so no node sees
    /// NORMAL without them — both go out in the same delta anyway).
    package mutating func setStatus(_ status: NodeStatus, tokens: [Token]? = nil) {
        if let tokens { setApplicationState(.tokens, EndpointState.encodeTokens(tokens)) }
        setApplicationState(.status, status.rawValue)
    }

    /// Peers remembered from before a restart (the shell's saved ring view): known with their
    /// tokens and status, but not alive until heard from, so a restarted node routes around them
    /// (hints, live replicas) instead of believing it is alone. They count as down since `now`
    /// for the hint window. Give the saved states version 0: anything a peer gossips is newer.
    /// Peers already known, quarantined, or this node itself are skipped.
    package mutating func restore(_ saved: [EndpointState], now: RingInstant) {
        for state in saved where state.node != local && states[state.node] == nil && quarantine[state.node] == nil {
            states[state.node] = state
            views[state.node] = View(isAlive: false, downSince: now)
        }
    }

    // MARK: Views

    package func state(of node: NodeID) -> EndpointState? { states[node] }

    /// Whether this node currently believes `node` is up (always true for itself).
    package func isAlive(_ node: NodeID) -> Bool {
        node == local || views[node]?.isAlive == true
    }

    /// When the failure detector convicted `node`, if it is down (for the hint window).
    package func downSince(_ node: NodeID) -> RingInstant? {
        views[node].flatMap { $0.isAlive ? nil : $0.downSince }
    }

    /// Peers believed up, sorted by id (this node excluded).
    package var liveMembers: [NodeID] {
        views.filter { $0.value.isAlive && $0.value.leftAt == nil }.keys.sorted()
    }

    /// Peers believed down that have not left, sorted by id.
    package var unreachableMembers: [NodeID] {
        views.filter { !$0.value.isAlive && $0.value.leftAt == nil }.keys.sorted()
    }

    // MARK: Round

    /// One gossip round (see the type's documentation). Call every `configuration.interval`.
    package mutating func onGossipTick(now: RingInstant, using rng: inout some RandomNumberGenerator) -> [GossipAction]
    {
        version += 1
        states[local]!.heartbeat.version = version
        var actions: [GossipAction] = []
        let syn = GossipMessage(clusterName: configuration.clusterName, from: local, payload: .syn(digests: digests()))
        let live = liveMembers
        let unreachable = unreachableMembers
        var gossipedToSeed = false
        if let target = live.randomElement(using: &rng) {
            actions.append(.send(syn, to: target.address))
            gossipedToSeed = seeds.contains(target.address)
        }
        if !unreachable.isEmpty,
            Double.random(in: 0..<1, using: &rng) < Double(unreachable.count) / Double(live.count + 1),
            let target = unreachable.randomElement(using: &rng)
        {
            actions.append(.send(syn, to: target.address))
        }
        if !seeds.isEmpty, !gossipedToSeed || live.count < seeds.count {
            if live.isEmpty {
                actions.append(.send(syn, to: seeds.randomElement(using: &rng)!))
            } else if Double.random(in: 0..<1, using: &rng) <= Double(seeds.count)
                / Double(live.count + unreachable.count)
            {
                actions.append(.send(syn, to: seeds.randomElement(using: &rng)!))
            }
        }
        actions += statusCheck(now: now)
        return actions
    }

    /// Digests of every known endpoint, sorted by id (deterministic).
    func digests() -> [GossipDigest] {
        states.values.sorted { $0.node < $1.node }.map {
            GossipDigest(node: $0.node, generation: $0.heartbeat.generation, maxVersion: $0.maxVersion)
        }
    }

    /// Convicts endpoints the failure detector no longer trusts and evicts long-gone LEFT nodes.
    mutating func statusCheck(now: RingInstant) -> [GossipAction] {
        var actions: [GossipAction] = []
        for node in views.keys.sorted() {
            guard var view = views[node] else { continue }
            if let leftAt = view.leftAt {
                if now - leftAt > configuration.leftRetention {
                    states[node] = nil
                    views[node] = nil
                    failureDetector.remove(node)
                    quarantine[node] = now + configuration.quarantineDelay
                    actions.append(.event(.evicted(node)))
                }
                continue
            }
            if view.isAlive, !failureDetector.isAvailable(node, now: now) {
                view.isAlive = false
                view.downSince = now
                views[node] = view
                actions.append(.event(.down(node)))
            }
        }
        quarantine = quarantine.filter { $0.value > now }
        return actions
    }
}
