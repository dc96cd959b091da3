/// The first request on a connection: the protocol versions the sender speaks. Optional in
/// version 1 (a frame's version byte already states its version) but clients send it so a future
/// version can negotiate, and to learn which node they reached.
public struct Hello: Hashable, Sendable {
    public var minVersion: UInt8
    public var maxVersion: UInt8
    /// Free text for logs ("confab-cli 0.1", "node 7f3a…").
    public var clientName: String

    public init(minVersion: UInt8 = ProtocolVersion.current, maxVersion: UInt8 = ProtocolVersion.current,
                clientName: String) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.clientName = clientName
    }
}

/// The answer to `Hello`: the version both sides will use and who answered.
public struct HelloAck: Hashable, Sendable {
    public var version: UInt8
    /// The node's stable id (kept in its data directory).
    public var nodeID: String
    public var clusterName: String

    public init(version: UInt8, nodeID: String, clusterName: String) {
        self.version = version
        self.nodeID = nodeID
        self.clusterName = clusterName
    }
}
