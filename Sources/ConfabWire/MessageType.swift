/// The type byte of a frame (docs/node_protocol.md § Message types).
///
/// Client-facing types are implemented in protocol version 1. Internode types are reserved now so
/// the ring's messages get stable numbers: a version-1 node that receives one answers with a
/// `protocolError` ("not implemented") and keeps the connection.
package struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    // Connection
    package static let hello = MessageType(rawValue: 0x01)
    package static let helloAck = MessageType(rawValue: 0x02)
    package static let ping = MessageType(rawValue: 0x03)
    package static let pong = MessageType(rawValue: 0x04)
    package static let error = MessageType(rawValue: 0x05)
    /// The answer to a HelloAck's challenge (protocol version 2, docs/security.md).
    package static let authenticate = MessageType(rawValue: 0x06)
    package static let authenticateAck = MessageType(rawValue: 0x07)

    // Client requests (coordinated by the receiving node)
    package static let write = MessageType(rawValue: 0x10)
    package static let writeAck = MessageType(rawValue: 0x11)
    package static let read = MessageType(rawValue: 0x12)
    package static let readResponse = MessageType(rawValue: 0x13)
    package static let status = MessageType(rawValue: 0x14)
    package static let statusResponse = MessageType(rawValue: 0x15)
    // Operator requests (run by the receiving node, not routed by key)
    package static let admin = MessageType(rawValue: 0x16)
    package static let adminResponse = MessageType(rawValue: 0x17)
    package static let repair = MessageType(rawValue: 0x18)
    package static let repairResponse = MessageType(rawValue: 0x19)
    /// Interim answers to a Repair that asked for progress (before its RepairResponse).
    package static let repairProgress = MessageType(rawValue: 0x1A)

    // Internode (the ring); StreamRangesData is reserved, not implemented yet
    package static let gossipSyn = MessageType(rawValue: 0x40)
    package static let gossipAck = MessageType(rawValue: 0x41)
    package static let gossipAck2 = MessageType(rawValue: 0x42)
    package static let replicaWrite = MessageType(rawValue: 0x48)
    package static let replicaWriteAck = MessageType(rawValue: 0x49)
    package static let replicaRead = MessageType(rawValue: 0x4A)
    package static let replicaReadResponse = MessageType(rawValue: 0x4B)
    package static let hintReplay = MessageType(rawValue: 0x4C)
    package static let hintReplayAck = MessageType(rawValue: 0x4D)
    package static let merkleTreeRequest = MessageType(rawValue: 0x50)
    package static let merkleTreeResponse = MessageType(rawValue: 0x51)
    package static let streamRangesRequest = MessageType(rawValue: 0x58)
    package static let streamRangesData = MessageType(rawValue: 0x59)
    package static let streamRangesDone = MessageType(rawValue: 0x5A)

    /// Types version 1 encodes and decodes.
    package static let implemented: [MessageType] = [
        .hello, .helloAck, .ping, .pong, .error, .authenticate, .authenticateAck, .write, .writeAck, .read,
        .readResponse, .status, .statusResponse,
        .gossipSyn, .gossipAck, .gossipAck2, .replicaWrite, .replicaWriteAck, .replicaRead, .replicaReadResponse,
        .hintReplay, .hintReplayAck, .admin, .adminResponse, .repair, .repairResponse, .repairProgress,
        .merkleTreeRequest, .merkleTreeResponse, .streamRangesRequest, .streamRangesDone,
    ]

    /// Numbers set aside for internode messages whose bodies are not defined yet (batched range
    /// streaming for bootstrap; repair streams as ReplicaWrites).
    package static let reservedInternode: [MessageType] = [.streamRangesData]

    package var isReservedInternode: Bool { Self.reservedInternode.contains(self) }

    package var name: String? {
        switch self {
        case .hello: return "Hello"
        case .helloAck: return "HelloAck"
        case .ping: return "Ping"
        case .pong: return "Pong"
        case .error: return "Error"
        case .authenticate: return "Authenticate"
        case .authenticateAck: return "AuthenticateAck"
        case .write: return "Write"
        case .writeAck: return "WriteAck"
        case .read: return "Read"
        case .readResponse: return "ReadResponse"
        case .status: return "Status"
        case .statusResponse: return "StatusResponse"
        case .admin: return "Admin"
        case .adminResponse: return "AdminResponse"
        case .repair: return "Repair"
        case .repairResponse: return "RepairResponse"
        case .repairProgress: return "RepairProgress"
        case .gossipSyn: return "GossipSyn"
        case .gossipAck: return "GossipAck"
        case .gossipAck2: return "GossipAck2"
        case .replicaWrite: return "ReplicaWrite"
        case .replicaWriteAck: return "ReplicaWriteAck"
        case .replicaRead: return "ReplicaRead"
        case .replicaReadResponse: return "ReplicaReadResponse"
        case .hintReplay: return "HintReplay"
        case .hintReplayAck: return "HintReplayAck"
        case .merkleTreeRequest: return "MerkleTreeRequest"
        case .merkleTreeResponse: return "MerkleTreeResponse"
        case .streamRangesRequest: return "StreamRangesRequest"
        case .streamRangesData: return "StreamRangesData"
        case .streamRangesDone: return "StreamRangesDone"
        default: return nil
        }
    }

    package var description: String {
        let hex = "0x" + (rawValue < 16 ? "0" : "") + String(rawValue, radix: 16)
        return name.map { "\($0) (\(hex))" } ?? "unknown type \(hex)"
    }
}
