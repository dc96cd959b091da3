import ConfabRing

extension ClusterService {
    /// See `NodeReadiness`: the checks a coordinator would fail on, made before any request.
    func readiness() -> NodeReadiness {
        guard let g = gossiper else { return NodeReadiness(reasons: ["the ring runtime has not started"]) }
        var reasons: [String] = []
        if learningRing {
            reasons.append("restarted without a saved ring view and no seed has answered yet")
        }
        let status = g.localState.status ?? .joining
        if status != .normal { reasons.append("this node is \(status.rawValue.lowercased()), not normal") }
        if ring.isEmpty { reasons.append("no node of the ring is normal yet (no seed has answered)") }
        let alive = aliveSet(at: now())
        if reasons.isEmpty {
            let rf = configuration.replicationFactor
            let quorum = rf / 2 + 1
            let short = ring.rangesWithReplicas(replicationFactor: rf).filter { entry in
                entry.replicas.contains(g.local) && entry.replicas.filter(alive.contains).count < quorum
            }
            if let first = short.first {
                let up = first.replicas.filter(alive.contains).count
                reasons.append(
                    "\(short.count) of its ranges have fewer than a quorum (\(quorum) of RF \(rf)) of replicas up "
                        + "(e.g. \(up) of \(first.replicas.map(\.id).joined(separator: ", ")))")
            }
        }
        return NodeReadiness(reasons: reasons, liveNodes: alive.count, downNodes: g.unreachableMembers.count)
    }
}
