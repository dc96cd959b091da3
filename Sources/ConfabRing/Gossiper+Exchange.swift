/// The Syn → Ack → Ack2 exchange and the merge of received states.
extension Gossiper {
    /// Handles any gossip message (dispatches on its payload).
    package mutating func receive(_ message: GossipMessage, now: RingInstant) -> [GossipAction] {
        guard message.clusterName == configuration.clusterName, message.from != local else { return [] }
        switch message.payload {
        case .syn(let digests): return onSyn(digests, from: message.from, now: now)
        case .ack(let requests, let states):
            return onAck(requests: requests, states: states, from: message.from, now: now)
        case .ack2(let states): return apply(states, from: message.from, now: now)
        }
    }

    /// Syn: compare the initiator's digests with what we know (Cassandra's
    /// `GossipDigestSynVerbHandler.examineGossiper`), then answer with an Ack.
    mutating func onSyn(_ digests: [GossipDigest], from sender: NodeID, now: RingInstant) -> [GossipAction] {
        var requests: [GossipDigest] = []
        var send: [EndpointState] = []
        var mentioned = Set<NodeID>()
        for d in digests {
            mentioned.insert(d.node)
            guard let mine = states[d.node] else {
                if quarantine[d.node] == nil {
                    requests.append(GossipDigest(node: d.node, generation: d.generation, maxVersion: 0))
                }
                continue
            }
            let myGeneration = mine.heartbeat.generation
            let myMax = mine.maxVersion
            if d.generation > myGeneration {
                requests.append(GossipDigest(node: d.node, generation: d.generation, maxVersion: 0))
            } else if d.generation < myGeneration {
                send.append(mine)
            } else if d.maxVersion > myMax {
                requests.append(GossipDigest(node: d.node, generation: myGeneration, maxVersion: myMax))
            } else if d.maxVersion < myMax {
                send.append(mine.delta(after: d.maxVersion))
            }
        }
        for (node, state) in states.sorted(by: { $0.key < $1.key }) where !mentioned.contains(node) {
            send.append(state)
        }
        let ack = GossipMessage(
            clusterName: configuration.clusterName, from: local,
            payload: .ack(requests: requests, states: send))
        return [.send(ack, to: sender.address)]
    }

    /// Ack: take the newer states, and send back what the receiver asked for.
    mutating func onAck(
        requests: [GossipDigest], states received: [EndpointState], from sender: NodeID,
        now: RingInstant
    ) -> [GossipAction] {
        var actions = apply(received, from: sender, now: now)
        var deltas: [EndpointState] = []
        for r in requests {
            guard let mine = states[r.node] else { continue }
            if mine.heartbeat.generation != r.generation || r.maxVersion == 0 {
                deltas.append(mine)
            } else if mine.maxVersion > r.maxVersion {
                deltas.append(mine.delta(after: r.maxVersion))
            }
        }
        if !deltas.isEmpty {
            let ack2 = GossipMessage(
                clusterName: configuration.clusterName, from: local, payload: .ack2(states: deltas))
            actions.append(.send(ack2, to: sender.address))
        }
        return actions
    }

    /// Merges received states (Cassandra's `applyStateLocally`): a higher generation replaces
    /// the endpoint's state; within a generation newer versions replace older values; anything
    /// older is ignored. State about this node is ignored: it is the authority on itself.
    mutating func apply(_ received: [EndpointState], from sender: NodeID, now: RingInstant) -> [GossipAction] {
        var actions: [GossipAction] = []
        for remote in received {
            let node = remote.node
            if node == local || quarantine[node] != nil { continue }
            guard let mine = states[node] else {
                actions += learn(remote, firstHand: node == sender, now: now)
                continue
            }
            if remote.heartbeat.generation > mine.heartbeat.generation {
                actions += restart(remote, now: now)
            } else if remote.heartbeat.generation == mine.heartbeat.generation, remote.maxVersion > mine.maxVersion {
                actions += applyNewer(remote, to: mine, now: now)
            }
        }
        return actions
    }

    /// A node heard of for the first time. Alive at once only if it told us itself.
    private mutating func learn(_ remote: EndpointState, firstHand: Bool, now: RingInstant) -> [GossipAction] {
        let node = remote.node
        states[node] = remote
        var actions: [GossipAction] = [.event(.joined(node, remote))]
        let left = remote.status == .left
        views[node] = View(isAlive: false, downSince: now, leftAt: left ? now : nil)
        if let s = remote.status { actions.append(.event(.statusChanged(node, s))) }
        if left {
            actions.append(.event(.left(node)))
        } else if firstHand {
            failureDetector.heartbeat(from: node, now: now)
            actions += markAlive(node)
        }
        return actions
    }

    /// A higher generation: the node restarted. Replace everything, relearn its rhythm.
    private mutating func restart(_ remote: EndpointState, now: RingInstant) -> [GossipAction] {
        let node = remote.node
        let oldStatus = states[node]?.status
        // Removed, then inserted: a node may come back on another address, and assigning to an
        // existing key keeps the old key (NodeID equality ignores the address), so `liveMembers`
        // would keep gossiping to the address it no longer listens on.
        states.removeValue(forKey: node)
        states[node] = remote
        var actions: [GossipAction] = [.event(.restarted(node))]
        var view = views.removeValue(forKey: node) ?? View(isAlive: false)
        if !view.isAlive { failureDetector.remove(node) }
        failureDetector.heartbeat(from: node, now: now)
        let status = remote.status
        if let status, status != oldStatus { actions.append(.event(.statusChanged(node, status))) }
        if status == .left {
            if view.leftAt == nil { actions.append(.event(.left(node))) }
            view.leftAt = view.leftAt ?? now
            view.isAlive = false
            views[node] = view
            return actions
        }
        view.leftAt = nil
        views[node] = view
        actions += markAlive(node)
        return actions
    }

    /// Same generation, newer versions: take each newer value; a newer heartbeat is a sign of life.
    private mutating func applyNewer(_ remote: EndpointState, to mine: EndpointState, now: RingInstant)
        -> [GossipAction]
    {
        let node = remote.node
        var merged = mine
        var actions: [GossipAction] = []
        let heartbeatAdvanced = remote.heartbeat.version > mine.heartbeat.version
        if heartbeatAdvanced { merged.heartbeat = remote.heartbeat }
        for (key, value) in remote.applicationStates.sorted(by: { $0.key < $1.key })
        where value.version > (mine.applicationStates[key]?.version ?? Int64.min) {
            merged.applicationStates[key] = value
            if key == .status {
                if let s = merged.status {
                    actions.append(.event(.statusChanged(node, s)))
                    if s == .left {
                        actions.append(.event(.left(node)))
                        views[node]?.leftAt = now
                        views[node]?.isAlive = false
                    }
                }
            } else {
                actions.append(.event(.stateChanged(node, key, value.value)))
            }
        }
        states[node] = merged
        if heartbeatAdvanced, views[node]?.leftAt == nil {
            failureDetector.heartbeat(from: node, now: now)
            if views[node]?.isAlive != true { actions += markAlive(node) }
        }
        return actions
    }

    private mutating func markAlive(_ node: NodeID) -> [GossipAction] {
        var view = views[node] ?? View(isAlive: false)
        guard !view.isAlive else { return [] }
        view.isAlive = true
        view.downSince = nil
        views[node] = view
        return [.event(.up(node))]
    }
}
