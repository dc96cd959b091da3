import Testing

@testable import ConfabRing

@Suite struct GossiperTests {
    let a = Fixtures.node(1), b = Fixtures.node(2), c = Fixtures.node(3)

    func make(_ n: NodeID, generation: Int64 = 1, seeds: [NodeID]) -> Gossiper {
        Gossiper(
            local: n, generation: generation, seeds: seeds.map(\.address),
            applicationStates: [.status: NodeStatus.normal.rawValue, .tokens: String(n.address.port)])
    }

    /// Delivers messages between gossipers until quiet; returns the events each one emitted.
    @discardableResult
    func deliver(
        _ actions: [GossipAction], from sender: NodeID, _ nodes: inout [NodeID: Gossiper],
        now: RingInstant
    ) -> [NodeID: [GossipEvent]] {
        var events: [NodeID: [GossipEvent]] = [:]
        var queue: [(NodeID, GossipAction)] = actions.map { (sender, $0) }
        while !queue.isEmpty {
            let (origin, action) = queue.removeFirst()
            switch action {
            case .event(let e): events[origin, default: []].append(e)
            case .send(let msg, let to):
                guard let target = nodes.keys.first(where: { $0.address == to }) else { continue }
                let out = nodes[target]!.receive(msg, now: now)
                queue += out.map { (target, $0) }
            }
        }
        return events
    }

    @Test func threeMessageExchangeSpreadsStateBothWays() {
        var nodes = [a: make(a, seeds: [a]), b: make(b, seeds: [a])]
        var rng = SplitMix64(seed: 1)
        let actions = nodes[b]!.onGossipTick(now: .zero, using: &rng)
        #expect(actions.contains { if case .send(_, let to) = $0 { to == a.address } else { false } })
        let events = deliver(actions, from: b, &nodes, now: .zero)
        #expect(nodes[a]!.state(of: b)?.status == .normal)
        #expect(nodes[b]!.state(of: a)?.status == .normal)
        #expect(nodes[a]!.isAlive(b) && nodes[b]!.isAlive(a))
        #expect(events[a]?.contains(.up(b)) == true)
        #expect(events[b]?.contains(.up(a)) == true)
        #expect(nodes[a]!.tokenRing().nodeCount == 2)
    }

    @Test func newerVersionsWinAndStaleOnesAreIgnored() {
        var g = make(a, seeds: [])
        let hb = HeartbeatState(generation: 5, version: 10)
        let v1 = EndpointState(node: b, heartbeat: hb, applicationStates: [.load: VersionedValue("100", version: 9)])
        _ = g.receive(GossipMessage(clusterName: "confab", from: b, payload: .ack2(states: [v1])), now: .zero)
        var v2 = v1
        v2.heartbeat.version = 12
        v2.applicationStates[.load] = VersionedValue("200", version: 11)
        let e = g.receive(GossipMessage(clusterName: "confab", from: c, payload: .ack2(states: [v2])), now: .zero)
        #expect(g.state(of: b)?.load == 200)
        #expect(e.contains(.event(.stateChanged(b, .load, "200"))))
        _ = g.receive(GossipMessage(clusterName: "confab", from: c, payload: .ack2(states: [v1])), now: .zero)
        #expect(g.state(of: b)?.load == 200)
        // A restart (higher generation) replaces everything, even with lower versions.
        let restarted = EndpointState(
            node: b, heartbeat: HeartbeatState(generation: 6, version: 1),
            applicationStates: [.status: VersionedValue("JOINING", version: 1)])
        let r = g.receive(
            GossipMessage(clusterName: "confab", from: c, payload: .ack2(states: [restarted])), now: .zero)
        #expect(g.state(of: b)?.load == nil)
        #expect(g.state(of: b)?.status == .joining)
        #expect(r.contains(.event(.restarted(b))) && r.contains(.event(.statusChanged(b, .joining))))
        // Other clusters are ignored.
        let other = GossipMessage(clusterName: "other", from: c, payload: .ack2(states: [restarted]))
        #expect(g.receive(other, now: .zero).isEmpty)
    }

    @Test func silentPeerIsConvictedAndComesBackUp() {
        var nodes = [a: make(a, seeds: [a]), b: make(b, seeds: [a])]
        var rng = SplitMix64(seed: 2)
        var downAt: Double?
        for s in 0..<60 {
            let now = Fixtures.seconds(Double(s))
            deliver(nodes[a]!.onGossipTick(now: now, using: &rng), from: a, &nodes, now: now)
            if s < 20 {
                deliver(nodes[b]!.onGossipTick(now: now, using: &rng), from: b, &nodes, now: now)
            } else if downAt == nil, !nodes[a]!.isAlive(b) {
                downAt = Double(s)
            }
        }
        // b last gossiped at 19 s. The window holds the 2 s bootstrap sample and 19 × 1 s, mean
        // 1.05 s, so phi passes 8 after 8 / log10(e) × 1.05 ≈ 19.3 s: at the round at 39 s.
        #expect(downAt == 39)
        #expect(nodes[a]!.downSince(b) == Fixtures.seconds(39))
        #expect(nodes[a]!.unreachableMembers == [b])
        // b restarts with a new generation and is up again after one exchange.
        nodes[b] = make(b, generation: 2, seeds: [a])
        let now = Fixtures.seconds(61)
        let events = deliver(nodes[b]!.onGossipTick(now: now, using: &rng), from: b, &nodes, now: now)
        #expect(nodes[a]!.isAlive(b))
        #expect(events[a]?.contains(.restarted(b)) == true && events[a]?.contains(.up(b)) == true)
    }

    @Test func statusChangesAndLeftNodesAreEvicted() {
        var cfg = Gossiper.Configuration()
        cfg.leftRetention = .seconds(30)
        var nodes = [a: Gossiper(local: a, generation: 1, seeds: [], configuration: cfg), b: make(b, seeds: [a])]
        var rng = SplitMix64(seed: 3)
        deliver(nodes[b]!.onGossipTick(now: .zero, using: &rng), from: b, &nodes, now: .zero)
        nodes[b]!.setStatus(.leaving)
        var events = deliver(
            nodes[b]!.onGossipTick(now: Fixtures.seconds(1), using: &rng), from: b, &nodes, now: Fixtures.seconds(1))
        #expect(events[a]?.contains(.statusChanged(b, .leaving)) == true)
        nodes[b]!.setStatus(.left)
        events = deliver(
            nodes[b]!.onGossipTick(now: Fixtures.seconds(2), using: &rng), from: b, &nodes, now: Fixtures.seconds(2))
        #expect(events[a]?.contains(.left(b)) == true)
        #expect(nodes[a]!.tokenRing().nodeCount == 0)
        let later = nodes[a]!.onGossipTick(now: Fixtures.seconds(40), using: &rng)
        #expect(later.contains(.event(.evicted(b))))
        #expect(nodes[a]!.state(of: b) == nil)
        // Quarantined: stale gossip about b does not bring it back.
        let stale = nodes[b]!.localState
        _ = nodes[a]!.receive(
            GossipMessage(clusterName: "confab", from: c, payload: .ack2(states: [stale])), now: Fixtures.seconds(41))
        #expect(nodes[a]!.state(of: b) == nil)
    }

    @Test func secondHandNodesStartUnreachableUntilTheirHeartbeatMoves() {
        var g = make(a, seeds: [])
        let s = EndpointState(node: c, heartbeat: HeartbeatState(generation: 1, version: 3))
        _ = g.receive(GossipMessage(clusterName: "confab", from: b, payload: .ack2(states: [s])), now: .zero)
        #expect(!g.isAlive(c))
        var s2 = s
        s2.heartbeat.version = 4
        let e = g.receive(GossipMessage(clusterName: "confab", from: b, payload: .ack2(states: [s2])), now: .zero)
        #expect(e.contains(.event(.up(c))) && g.isAlive(c))
    }

    /// A peer restarted on another port (same id, newer generation) is gossiped to at its new
    /// address: NodeID equality ignores the address, so the membership maps must not keep the
    /// key they were first filled with.
    @Test func aPeerRestartedOnANewAddressIsGossipedToThere() {
        var nodes = [a: make(a, seeds: []), b: make(b, seeds: [a])]
        var rng = SplitMix64(seed: 7)
        deliver(nodes[b]!.onGossipTick(now: .zero, using: &rng), from: b, &nodes, now: .zero)
        #expect(nodes[a]!.isAlive(b))
        let moved = NodeID(id: b.id, host: "127.0.0.1", port: 9999)
        nodes[b] = nil
        nodes[moved] = make(moved, generation: 2, seeds: [a])
        deliver(
            nodes[moved]!.onGossipTick(now: Fixtures.seconds(1), using: &rng), from: moved, &nodes,
            now: Fixtures.seconds(1))
        #expect(nodes[a]!.state(of: b)?.node.address == moved.address)
        #expect(nodes[a]!.liveMembers.map(\.address) == [moved.address])
        #expect(nodes[a]!.tokenRing().entries.contains { $0.node.address == moved.address })
        for round in 0..<5 {
            let sends = nodes[a]!.onGossipTick(now: Fixtures.seconds(2 + Double(round)), using: &rng).compactMap {
                if case .send(_, let to) = $0 { to } else { nil }
            }
            #expect(!sends.isEmpty && sends.allSatisfy { $0 == moved.address }, "round \(round): \(sends)")
        }
    }

    /// Peers restored from a saved ring view are in the token ring but not alive until heard from;
    /// anything the peer gossips replaces them.
    @Test func restoredPeersOwnTokensButAreDownUntilHeardFrom() {
        var g = make(a, seeds: [])
        let saved = EndpointState(
            node: b, heartbeat: HeartbeatState(generation: 4, version: 0),
            applicationStates: [
                .status: VersionedValue("NORMAL", version: 0), .tokens: VersionedValue("7002", version: 0),
            ])
        g.restore([saved], now: .zero)
        #expect(!g.isAlive(b) && g.downSince(b) == .zero)
        #expect(g.unreachableMembers == [b])
        #expect(g.tokenRing().nodeCount == 2)
        let live = EndpointState(
            node: b, heartbeat: HeartbeatState(generation: 4, version: 3),
            applicationStates: [
                .status: VersionedValue("NORMAL", version: 1), .tokens: VersionedValue("7002", version: 2),
            ])
        let e = g.receive(GossipMessage(clusterName: "confab", from: b, payload: .ack2(states: [live])), now: .zero)
        #expect(e.contains(.event(.up(b))) && g.isAlive(b))
        #expect(g.state(of: b) == live)
    }
}
