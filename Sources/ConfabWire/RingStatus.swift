/// What `confab ring status` shows, like `nodetool status`: one node's view of the ring.
public struct RingStatus: Hashable, Sendable, Codable {
    public var clusterName: String
    public var replicationFactor: Int
    /// Every member this node knows, sorted by address.
    public var nodes: [RingNodeStatus]
    /// The answering node's keyspaces and their replication factors (every node of a ring should
    /// report the same). Empty from a node that serves no keyspaces.
    public var keyspaces: [Keyspace] = []

    /// A keyspace and its replication factor.
    public struct Keyspace: Hashable, Sendable, Codable {
        public var name: String
        public var replicationFactor: Int

        public init(name: String, replicationFactor: Int) {
            self.name = name
            self.replicationFactor = replicationFactor
        }
    }

    /// The replication factor of `keyspace` as the node reported it; `replicationFactor` when
    /// the keyspace is not listed.
    public func replicationFactor(keyspace: String) -> Int {
        keyspaces.first { $0.name == keyspace }?.replicationFactor ?? replicationFactor
    }

    public init(clusterName: String, replicationFactor: Int, nodes: [RingNodeStatus]) {
        self.clusterName = clusterName
        self.replicationFactor = replicationFactor
        self.nodes = nodes
    }
}

/// One member as the answering node sees it.
public struct RingNodeStatus: Hashable, Sendable, Codable {
    /// Membership state: "joining", "normal", "leaving", "left"; liveness is `isUp`.
    public var state: String
    /// Whether the answering node's failure detector considers it alive.
    public var isUp: Bool
    public var id: String
    public var host: String
    public var port: UInt16
    /// Bytes on disk (SSTables and WAL), as last gossiped.
    public var loadBytes: UInt64
    /// Number of vnode tokens it owns.
    public var tokens: Int
    /// Fraction of the data it holds replicas of (Cassandra's "Owns (effective)"), 0...1.
    public var ownership: Double
    /// The tokens themselves, so clients can route each request to a replica of its partition.
    public var tokenValues: [Int64]
    /// The member's gossip generation as the answering node knows it (it changes on every
    /// restart; 0 when unknown). A moving node compares the generation each member reports for
    /// itself before and after streaming: a member that restarted in between may have
    /// coordinated writes before it learned of the move again (docs/ring.md § Bootstrap, step 3).
    public var generation: Int64 = 0
    /// SSTables the member moved out of its read path as corrupt (as it gossiped): its rows there
    /// are missing until `confab repair` restores them from the other replicas.
    public var quarantinedTables: Int = 0

    public init(
        state: String, isUp: Bool, id: String, host: String, port: UInt16, loadBytes: UInt64, tokens: Int,
        ownership: Double,
        tokenValues: [Int64] = [], generation: Int64 = 0, quarantinedTables: Int = 0
    ) {
        self.state = state
        self.isUp = isUp
        self.id = id
        self.host = host
        self.port = port
        self.loadBytes = loadBytes
        self.tokens = tokens
        self.ownership = ownership
        self.tokenValues = tokenValues
        self.generation = generation
        self.quarantinedTables = quarantinedTables
    }
}
