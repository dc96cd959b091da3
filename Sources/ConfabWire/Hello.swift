/// The first request on a connection: the protocol versions the sender speaks, and — from a node —
/// the node id it will authenticate as.
package struct Hello: Hashable, Sendable {
    package var minVersion: UInt8
    package var maxVersion: UInt8
    /// Free text for logs ("confab-cli 0.1", "node 7f3a…").
    package var clientName: String
    /// The id of the node opening this connection, empty for clients and operators. Bound into the
    /// authentication answer (docs/security.md), so a node cannot authenticate under another id.
    package var nodeID: String

    package init(
        minVersion: UInt8 = ProtocolVersion.current, maxVersion: UInt8 = ProtocolVersion.current,
        clientName: String, nodeID: String = ""
    ) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.clientName = clientName
        self.nodeID = nodeID
    }
}

/// The answer to `Hello`: the version both sides will use, who answered, and the challenge a peer
/// answers to be trusted with more than reads and writes.
package struct HelloAck: Hashable, Sendable {
    package var version: UInt8
    /// The node's stable id (kept in its data directory).
    package var nodeID: String
    package var clusterName: String
    /// False when the node runs without a cluster secret (`--insecure-no-cluster-secret`): every
    /// connection may then send everything, and there is nothing to authenticate.
    package var authenticationRequired: Bool
    /// Fresh random bytes for this connection (`ClusterSecret.nonceSize`), all zero when
    /// authentication is not required. An answer is only valid for the connection it was issued on.
    package var challenge: [UInt8]

    package init(
        version: UInt8, nodeID: String, clusterName: String, authenticationRequired: Bool = false,
        challenge: [UInt8] = [UInt8](repeating: 0, count: ClusterSecret.nonceSize)
    ) {
        self.version = version
        self.nodeID = nodeID
        self.clusterName = clusterName
        self.authenticationRequired = authenticationRequired
        self.challenge = challenge
    }
}
