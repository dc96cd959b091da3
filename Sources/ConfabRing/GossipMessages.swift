/// What a node advertises about one endpoint in a gossip round: the generation and the highest
/// version it knows. Small, so a Syn lists every known endpoint.
public struct GossipDigest: Hashable, Sendable {
    public var node: NodeID
    public var generation: Int64
    public var maxVersion: Int64

    public init(node: NodeID, generation: Int64, maxVersion: Int64) {
        self.node = node
        self.generation = generation
        self.maxVersion = maxVersion
    }
}

/// The three-message gossip exchange (Cassandra's GossipDigestSyn/Ack/Ack2):
///
/// 1. `syn`: the initiator's digests of every endpoint it knows.
/// 2. `ack`: the receiver's requests (digests with the version it has, 0 for "everything") for
///    endpoints where the initiator knows more, plus full deltas where the receiver knows more.
/// 3. `ack2`: the initiator's deltas for what the receiver requested.
///
/// After one exchange both sides hold the newer of each value. Messages are plain values; the
/// byte-level wire encoding belongs to the shell (docs/ring.md lists the fields).
public struct GossipMessage: Hashable, Sendable {
    public enum Payload: Hashable, Sendable {
        case syn(digests: [GossipDigest])
        case ack(requests: [GossipDigest], states: [EndpointState])
        case ack2(states: [EndpointState])
    }

    /// Nodes only gossip within one cluster; a message from another cluster is dropped.
    public var clusterName: String
    public var from: NodeID
    public var payload: Payload

    public init(clusterName: String, from: NodeID, payload: Payload) {
        self.clusterName = clusterName
        self.from = from
        self.payload = payload
    }
}

/// What the gossiper asks its shell to do, and what it tells listeners.
public enum GossipAction: Hashable, Sendable {
    /// Send a message to the node listening at the address (best effort: loss is fine).
    case send(GossipMessage, to: NodeAddress)
    /// Membership news for the ring, coordinators and hint replay.
    case event(GossipEvent)
}

public enum GossipEvent: Hashable, Sendable {
    /// First time this node hears of `node`.
    case joined(NodeID, EndpointState)
    /// The failure detector now believes `node` is alive (again).
    case up(NodeID)
    /// The failure detector convicted `node`.
    case down(NodeID)
    /// `node` announced a new status.
    case statusChanged(NodeID, NodeStatus)
    /// `node` left the ring (status LEFT).
    case left(NodeID)
    /// `node` restarted: a higher generation replaced everything known about it.
    case restarted(NodeID)
    /// Another application state of `node` changed (tokens, load, schema …).
    case stateChanged(NodeID, ApplicationStateKey, String)
    /// `node`'s state was dropped from gossip (LEFT long enough ago).
    case evicted(NodeID)
}
