/// What a node's `/ready` answers: whether it can serve reads and writes now, and if not, why.
///
/// Ready means the node knows its ring (a saved view, or an answer from a seed), is NORMAL, and
/// every range it holds a replica of has a quorum of its replicas believed up — so a QUORUM
/// request it coordinates for its own data can succeed. A load balancer or `confab up` waits for
/// it instead of sending requests that would be answered `unavailable`.
public struct NodeReadiness: Sendable, Hashable {
    public var ready: Bool { reasons.isEmpty }
    /// Why the node is not ready; empty when it is.
    public var reasons: [String]
    /// Members believed up, itself included, and members known but believed down.
    public var liveNodes: Int
    public var downNodes: Int

    public init(reasons: [String], liveNodes: Int = 0, downNodes: Int = 0) {
        self.reasons = reasons
        self.liveNodes = liveNodes
        self.downNodes = downNodes
    }
}
