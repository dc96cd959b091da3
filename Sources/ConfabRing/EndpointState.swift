/// A node's gossip heartbeat: `generation` changes on every restart (Cassandra uses the start
/// time in seconds), `version` increases with every change the node makes to its own state.
public struct HeartbeatState: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var generation: Int64
    public var version: Int64

    public init(generation: Int64, version: Int64) {
        self.generation = generation
        self.version = version
    }

    public static func < (a: HeartbeatState, b: HeartbeatState) -> Bool {
        (a.generation, a.version) < (b.generation, b.version)
    }

    public var description: String { "\(generation):\(version)" }
}

/// The name of one piece of application state a node gossips about itself. A struct over a string
/// rather than an enum, so new keys (schema, rack, severity) can be added without a wire break.
public struct ApplicationStateKey: Hashable, Comparable, Sendable, RawRepresentable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// `NodeStatus` raw value.
    public static let status = ApplicationStateKey(rawValue: "STATUS")
    /// The node's vnode tokens, comma-separated decimals.
    public static let tokens = ApplicationStateKey(rawValue: "TOKENS")
    /// Bytes of data on disk, decimal.
    public static let load = ApplicationStateKey(rawValue: "LOAD")
    /// Where clients and peers reach the node, "host:port".
    public static let address = ApplicationStateKey(rawValue: "RPC_ADDRESS")
    /// Schema version, so nodes notice when they disagree.
    public static let schema = ApplicationStateKey(rawValue: "SCHEMA")
    public static let releaseVersion = ApplicationStateKey(rawValue: "RELEASE_VERSION")
    /// SSTables the node moved out of its read path as corrupt, decimal (absent or "0": none).
    public static let quarantined = ApplicationStateKey(rawValue: "QUARANTINED")

    public static func < (a: ApplicationStateKey, b: ApplicationStateKey) -> Bool { a.rawValue < b.rawValue }
    public var description: String { rawValue }
}

/// A value with the version at which its owner set it. Versions come from the owner's single
/// counter (shared with the heartbeat), so "everything newer than version v" is well defined.
public struct VersionedValue: Hashable, Sendable {
    public var value: String
    public var version: Int64

    public init(_ value: String, version: Int64) {
        self.value = value
        self.version = version
    }
}

/// A node's lifecycle state as it announces it (Cassandra's STATUS values). "Down" is not a status:
/// each node decides liveness locally with its failure detector.
public enum NodeStatus: String, Hashable, Sendable, CaseIterable {
    /// Bootstrapping: receives writes for the ranges it is taking over, serves no reads yet.
    case joining = "JOINING"
    /// Owns its tokens and serves reads and writes.
    case normal = "NORMAL"
    /// Decommissioning: streaming its ranges to their new owners, still a replica meanwhile.
    case leaving = "LEAVING"
    /// Gone from the ring; kept in gossip for a while so every node learns it.
    case left = "LEFT"
}

/// Everything gossiped about one node: its heartbeat and its versioned application states.
///
/// Merge rule (Cassandra's `Gossiper.applyStateLocally`): a higher generation replaces the whole
/// state (the node restarted); within a generation each value with a higher version replaces the
/// older one. Local judgements (alive or not, when last updated) are kept by the `Gossiper`, not
/// here, so this is exactly what goes on the wire.
public struct EndpointState: Hashable, Sendable {
    public var node: NodeID
    public var heartbeat: HeartbeatState
    public var applicationStates: [ApplicationStateKey: VersionedValue]

    public init(node: NodeID, heartbeat: HeartbeatState, applicationStates: [ApplicationStateKey: VersionedValue] = [:])
    {
        self.node = node
        self.heartbeat = heartbeat
        self.applicationStates = applicationStates
    }

    /// The highest version anywhere in the state: what a digest advertises.
    public var maxVersion: Int64 {
        applicationStates.values.reduce(heartbeat.version) { max($0, $1.version) }
    }

    public subscript(key: ApplicationStateKey) -> String? { applicationStates[key]?.value }

    public var status: NodeStatus? { self[.status].flatMap(NodeStatus.init(rawValue:)) }

    public var tokens: [Token] {
        guard let s = self[.tokens], !s.isEmpty else { return [] }
        return s.split(separator: ",").compactMap { Int64($0).map(Token.init) }
    }

    public var load: Int64? { self[.load].flatMap { Int64($0) } }

    /// The part of the state newer than `version`: the heartbeat always (it carries the
    /// generation), application states only if newer.
    public func delta(after version: Int64) -> EndpointState {
        EndpointState(
            node: node, heartbeat: heartbeat,
            applicationStates: applicationStates.filter { $0.value.version > version })
    }

    static func encodeTokens(_ tokens: [Token]) -> String {
        tokens.sorted().map(\.description).joined(separator: ",")
    }
}
