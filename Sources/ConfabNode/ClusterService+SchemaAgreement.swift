import ConfabRing
import ConfabWire

extension ClusterService {
    /// Warns when a peer gossips replication factors other than this node's. Coordinators pick
    /// replicas from their own configuration, so nodes that disagree write and read different
    /// replica sets (docs/ring.md § Keyspaces); the ring keeps running, the operator must fix the
    /// configuration. Called when a peer is first heard of and when its SCHEMA state changes, so
    /// it warns once per change, not per gossip round.
    func checkSchema(_ peerSignature: String?, of node: NodeID) {
        let local = configuration.schema.replicationSignature
        guard let peerSignature, peerSignature != local else { return }
        logger.warning(
            "peer has different replication factors; every node of a ring must use the same (docs/ring.md § Keyspaces)",
            metadata: [
                "node": "\(node)", "peer_replication": "\(peerSignature)", "local_replication": "\(local)",
            ])
    }
}
