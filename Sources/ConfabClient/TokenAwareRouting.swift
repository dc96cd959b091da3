import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Synchronization

/// Sends each request first to a replica of its partition (rotating among the replicas), then to
/// the other nodes as fallbacks — as the Cassandra drivers' token-aware policy does. The coordinator
/// is then one of the replicas and answers part of the request from its own data, saving a network
/// hop. The client learns the ring's tokens from a node's status (`ConfabClient.discoverRing()`,
/// done lazily before the first partition request and refreshed every `refreshInterval`); until
/// it knows them, or for requests on no partition, it falls back to round robin.
public final class TokenAwareRouting: RoutingPolicy {
    struct Topology {
        var ring = TokenRing()
        var replicationFactor = 1
        /// Per keyspace, as the node reported them (capped at the ring's size).
        var keyspaceReplicationFactors: [String: Int] = [:]
        var learnedAt: Date?
    }

    private let state = Mutex(Topology())
    private let fallback = RoundRobinRouting()
    private let rotation = Mutex(0)
    /// How old the learned ring may get before the client asks again.
    public let refreshInterval: TimeInterval

    public init(refreshInterval: TimeInterval = 30) {
        self.refreshInterval = refreshInterval
    }

    /// Whether the ring should be (re)learned before routing the next request.
    var needsTopology: Bool {
        state.withLock { t in t.learnedAt.map { Date().timeIntervalSince($0) > refreshInterval } ?? true }
    }

    /// Learns the ring from a node's status: every member's address and tokens.
    public func update(from status: RingStatus) {
        var ring = TokenRing()
        for n in status.nodes where !n.tokenValues.isEmpty && n.state != "left" {
            let node = NodeID(id: n.id, host: n.host, port: Int(n.port))
            try? ring.add(node, tokens: n.tokenValues.map(Token.init))
        }
        state.withLock {
            $0.ring = ring
            $0.replicationFactor = max(1, min(status.replicationFactor, ring.nodeCount))
            $0.keyspaceReplicationFactors = Dictionary(
                status.keyspaces.map { ($0.name, max(1, min($0.replicationFactor, ring.nodeCount))) },
                uniquingKeysWith: { a, _ in a })
            $0.learnedAt = Date()
        }
    }

    /// Marks the learned ring stale (e.g. after a node could not be reached).
    func invalidate() {
        state.withLock { $0.learnedAt = nil }
    }

    public func plan(partitionKey: [UInt8]?, nodes: [NodeAddress]) -> [NodeAddress] {
        plan(partitionKey: partitionKey, keyspace: nil, nodes: nodes)
    }

    /// Replicas of the key at `keyspace`'s replication factor first (the ring-wide factor when
    /// the keyspace is unknown or not given): rotating over more nodes than the keyspace's
    /// replicas would send requests to coordinators that hold none of the data.
    public func plan(partitionKey: [UInt8]?, keyspace: String?, nodes: [NodeAddress]) -> [NodeAddress] {
        let ordered = fallback.plan(partitionKey: partitionKey, nodes: nodes)
        guard let partitionKey, !partitionKey.isEmpty else { return ordered }
        let (ring, rf) = state.withLock { t in
            (t.ring, keyspace.flatMap { t.keyspaceReplicationFactors[$0] } ?? t.replicationFactor)
        }
        guard !ring.isEmpty else { return ordered }
        var replicas = ring.replicas(for: Token(partitionKey: partitionKey), replicationFactor: rf).map(\.address)
        // Only nodes the client was configured with or that the ring reported are used; spread
        // load over the replicas.
        if replicas.count > 1 {
            let start =
                rotation.withLock { r in
                    defer { r &+= 1 }
                    return r
                } % replicas.count
            replicas = Array(replicas[start...] + replicas[..<start])
        }
        return replicas + ordered.filter { !replicas.contains($0) }
    }
}

extension WireMessage {
    /// The keyspace a client request is on (routing needs its replication factor), if any.
    var keyspace: String? {
        switch self {
        case .write(let r): return r.keyspace
        case .read(let r): return r.keyspace
        default: return nil
        }
    }
}
