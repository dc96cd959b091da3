/// What a connection is allowed to send (docs/security.md § Message classes). Ordered: a role may
/// send everything a lower one may.
public enum PeerRole: UInt8, Comparable, Sendable, CustomStringConvertible {
    /// Any connection: Hello, Authenticate, Ping, Read, Write, Status.
    case client = 0
    /// Also Admin (flush, compact, decommission) and Repair: the `confab` CLI with the secret.
    case `operator` = 1
    /// Also internode messages: gossip, replica reads and writes, hints, Merkle trees, streams.
    case node = 2

    public static func < (a: PeerRole, b: PeerRole) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .client: return "client"
        case .operator: return "operator"
        case .node: return "node"
        }
    }
}

/// The answer to a HelloAck's challenge: proves the sender holds the cluster secret, for this
/// connection only (the MAC covers the node's fresh challenge).
public struct Authenticate: Hashable, Sendable {
    /// `.operator` or `.node` (`.client` needs no authentication and is refused).
    public var role: PeerRole
    /// Fresh random bytes from the sender (`ClusterSecret.nonceSize`).
    public var clientNonce: [UInt8]
    /// `ClusterSecret.answer(...)`, 32 bytes.
    public var mac: [UInt8]

    public init(role: PeerRole, clientNonce: [UInt8], mac: [UInt8]) {
        self.role = role
        self.clientNonce = clientNonce
        self.mac = mac
    }
}

extension MessageType {
    /// The least role allowed to send this message as a request. Responses and unknown types
    /// count as client messages: the decoder or handler refuses them anyway.
    public var requiredRole: PeerRole {
        switch self {
        case .admin, .repair:
            return .operator
        case .gossipSyn, .gossipAck, .gossipAck2, .replicaWrite, .replicaRead, .hintReplay, .merkleTreeRequest,
            .streamRangesRequest, .streamRangesData:
            return .node
        default:
            return .client
        }
    }
}
