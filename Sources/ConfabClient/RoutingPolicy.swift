import ConfabRing
import ConfabTransport
import Synchronization

/// Chooses which nodes to try for a request, in order: the first is the coordinator, the rest are
/// fallbacks when it cannot be reached. The hook for token-aware routing (prefer a replica of the
/// partition key's token, so the coordinator answers from its own data).
public protocol RoutingPolicy: Sendable {
    /// The nodes to try for a request on `partitionKey` (nil for requests on no partition).
    func plan(partitionKey: [UInt8]?, nodes: [NodeAddress]) -> [NodeAddress]
    /// The same for a request on a table of `keyspace` (replica sets depend on the keyspace's
    /// replication factor). By default the keyspace is ignored.
    func plan(partitionKey: [UInt8]?, keyspace: String?, nodes: [NodeAddress]) -> [NodeAddress]
}

extension RoutingPolicy {
    public func plan(partitionKey: [UInt8]?, keyspace: String?, nodes: [NodeAddress]) -> [NodeAddress] {
        plan(partitionKey: partitionKey, nodes: nodes)
    }
}

/// Spreads requests over every node in turn; the default until the client knows the ring.
public final class RoundRobinRouting: RoutingPolicy {
    private let next = Mutex(0)

    public init() {}

    public func plan(partitionKey: [UInt8]?, nodes: [NodeAddress]) -> [NodeAddress] {
        guard !nodes.isEmpty else { return [] }
        let start = next.withLock { n in
            defer { n = (n + 1) % nodes.count }
            return n % nodes.count
        }
        return Array(nodes[start...] + nodes[..<start])
    }
}
