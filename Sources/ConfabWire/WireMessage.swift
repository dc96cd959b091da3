import ConfabEngine
import ConfabRing

/// Every message protocol version 1 implements, with its body encoding (docs/node_protocol.md §
/// Messages). Encoding is total; decoding checks every length and value and throws a `WireError`
/// naming the message and field on any malformed body — it never traps.
package enum WireMessage: Hashable, Sendable {
    case hello(Hello)
    case helloAck(HelloAck)
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    case error(WireError)
    /// The answer to the HelloAck's challenge, asking for a role (docs/security.md).
    case authenticate(Authenticate)
    /// The node accepted the answer: the connection now has this role.
    case authenticateAck(role: PeerRole)
    case write(WriteRequest)
    case writeAck(WriteAck)
    case read(ReadRequest)
    case readResponse(ReadResponse)
    /// Asks a node for its view of the ring (`confab ring status`).
    case status
    case statusResponse(RingStatus)
    /// One step of the gossip exchange (GossipSyn, GossipAck or GossipAck2 by its payload). One-way:
    /// never answered on its stream; the receiver's reply travels as its own message.
    case gossip(GossipMessage)
    /// A mutation for the receiving replica to apply locally (sent by a coordinator).
    case replicaWrite(WriteRequest)
    /// The replica applied the ReplicaWrite durably (per its sync mode).
    case replicaWriteAck
    /// A slice for the receiving replica to read from its own data (digest only when flagged).
    case replicaRead(ReadRequest)
    case replicaReadResponse(ReplicaReadResponse)
    /// A hint delivered to the replica that missed the write.
    case hintReplay(HintReplay)
    /// The replica applied the hint with this id.
    case hintReplayAck(id: UInt64)
    /// Flush or compact on this node or every node (`confab flush`, `confab compact`).
    case admin(AdminRequest)
    case adminResponse(AdminResponse)
    /// Coordinate a repair of every range the receiving node replicates (`confab repair`).
    case repair(RepairRequest)
    case repairResponse(RepairReport)
    /// An interim answer on a Repair's stream (only when the request asked for progress).
    case repairProgress(RepairProgress)
    /// A repair coordinator asks a replica for its Merkle tree of a range.
    case merkleTreeRequest(MerkleTreeRequest)
    case merkleTreeResponse(MerkleTreeLeaves)
    /// A repair coordinator asks a replica to send its data in some ranges to another replica.
    case streamRanges(StreamRangesRequest)
    case streamRangesDone(StreamRangesDone)

    package var type: MessageType {
        switch self {
        case .hello: return .hello
        case .helloAck: return .helloAck
        case .ping: return .ping
        case .pong: return .pong
        case .error: return .error
        case .authenticate: return .authenticate
        case .authenticateAck: return .authenticateAck
        case .write: return .write
        case .writeAck: return .writeAck
        case .read: return .read
        case .readResponse: return .readResponse
        case .status: return .status
        case .statusResponse: return .statusResponse
        case .gossip(let g): return g.wireType
        case .replicaWrite: return .replicaWrite
        case .replicaWriteAck: return .replicaWriteAck
        case .replicaRead: return .replicaRead
        case .replicaReadResponse: return .replicaReadResponse
        case .hintReplay: return .hintReplay
        case .hintReplayAck: return .hintReplayAck
        case .admin: return .admin
        case .adminResponse: return .adminResponse
        case .repair: return .repair
        case .repairResponse: return .repairResponse
        case .repairProgress: return .repairProgress
        case .merkleTreeRequest: return .merkleTreeRequest
        case .merkleTreeResponse: return .merkleTreeResponse
        case .streamRanges: return .streamRangesRequest
        case .streamRangesDone: return .streamRangesDone
        }
    }

    /// True for messages that get no answer on their stream (gossip): the sender does not wait.
    package var isOneWay: Bool {
        if case .gossip = self { return true }
        return false
    }

    /// True for messages that answer a request (their frames carry the `response` flag).
    package var isResponse: Bool {
        switch self {
        case .helloAck, .pong, .error, .authenticateAck, .writeAck, .readResponse, .statusResponse, .replicaWriteAck,
            .replicaReadResponse, .hintReplayAck, .adminResponse, .repairResponse, .merkleTreeResponse,
            .streamRangesDone, .repairProgress:
            return true
        case .hello, .authenticate, .ping, .write, .read, .status, .gossip, .replicaWrite, .replicaRead, .hintReplay,
            .admin, .repair,
            .merkleTreeRequest, .streamRanges:
            return false
        }
    }

    /// The frame carrying this message on `streamID`.
    package func frame(streamID: UInt32) -> Frame {
        Frame(type: type, flags: isResponse ? .response : [], streamID: streamID, body: encodedBody())
    }

    /// The whole frame's bytes.
    package func encodedFrame(streamID: UInt32) -> [UInt8] { frame(streamID: streamID).encoded() }

    // MARK: Encoding

    package func encodedBody() -> [UInt8] {
        var w = WireWriter()
        switch self {
        case .hello(let h):
            w.u8(h.minVersion)
            w.u8(h.maxVersion)
            w.string(String(h.clientName.utf8.prefix(1024)) ?? "")
            w.string(String(h.nodeID.utf8.prefix(1024)) ?? "")
        case .helloAck(let a):
            w.u8(a.version)
            w.string(a.nodeID)
            w.string(a.clusterName)
            w.u8(a.authenticationRequired ? 1 : 0)
            w.bytes +=
                a.challenge.count == ClusterSecret.nonceSize
                ? a.challenge : [UInt8](repeating: 0, count: ClusterSecret.nonceSize)
        case .authenticate(let a):
            w.u8(a.role.rawValue)
            w.bytes +=
                a.clientNonce.count == ClusterSecret.nonceSize
                ? a.clientNonce : [UInt8](repeating: 0, count: ClusterSecret.nonceSize)
            w.bytes +=
                a.mac.count == ClusterSecret.macSize ? a.mac : [UInt8](repeating: 0, count: ClusterSecret.macSize)
        case .authenticateAck(let role):
            w.u8(role.rawValue)
        case .ping(let n), .pong(let n):
            w.u64(n)
        case .error(let e):
            w.u16(e.code.rawValue)
            w.longString(e.message)
        case .write(let r), .replicaWrite(let r):
            w.u8(r.consistency.wireCode)
            w.string(r.keyspace)
            w.string(r.table)
            let m = r.mutation.encoded()
            w.bytes.reserveCapacity(w.bytes.count + 4 + m.count)
            w.longBytes(m)
        case .writeAck(let a):
            w.u8(a.acknowledged)
            w.u8(a.required)
        case .read(let r), .replicaRead(let r):
            w.u8(r.consistency.wireCode)
            var flags: UInt8 = 0
            if r.digestOnly { flags |= ReadFlags.digestOnly }
            if r.reversed { flags |= ReadFlags.reversed }
            if let l = r.lower { flags |= ReadFlags.hasLower | (l.inclusive ? ReadFlags.lowerInclusive : 0) }
            if let u = r.upper { flags |= ReadFlags.hasUpper | (u.inclusive ? ReadFlags.upperInclusive : 0) }
            if r.cursor != nil { flags |= ReadFlags.hasCursor }
            if r.byteLimit != nil { flags |= ReadFlags.hasByteLimit }
            w.u8(flags)
            w.string(r.keyspace)
            w.string(r.table)
            w.shortBytes(r.partitionKey)
            if let l = r.lower { w.longBytes(l.prefix) }
            if let u = r.upper { w.longBytes(u.prefix) }
            if let c = r.cursor { w.longBytes(c) }
            w.u32(r.limit)
            if let b = r.byteLimit { w.u32(b) }
        case .readResponse(.rows(let rows)):
            w.u8(ResponseKind.rows)
            w.u8(rows.cursor == nil ? 0 : 1)
            if let c = rows.cursor { w.longBytes(c) }
            w.u32(rows.tombstonesScanned)
            w.longBytes(rows.asMutation.encoded())
        case .readResponse(.digest(let d)):
            w.u8(ResponseKind.digest)
            w.u64(d.high)
            w.u64(d.low)
        case .status:
            break
        case .statusResponse(let s):
            w.string(s.clusterName)
            w.u8(UInt8(clamping: s.replicationFactor))
            w.u32(UInt32(s.nodes.count))
            for n in s.nodes {
                w.string(n.state)
                w.u8(n.isUp ? 1 : 0)
                w.string(n.id)
                w.string(n.host)
                w.u16(n.port)
                w.u64(n.loadBytes)
                w.u32(UInt32(clamping: n.tokens))
                w.u64(n.ownership.bitPattern)
                w.u32(UInt32(n.tokenValues.count))
                for t in n.tokenValues { w.i64(t) }
                w.i64(n.generation)
                w.u32(UInt32(clamping: n.quarantinedTables))
            }
            w.u16(UInt16(clamping: s.keyspaces.count))
            for k in s.keyspaces {
                w.string(k.name)
                w.u8(UInt8(clamping: k.replicationFactor))
            }
        case .gossip(let g):
            g.encode(into: &w)
        case .replicaWriteAck:
            break
        case .replicaReadResponse(.data(let result)):
            if let cursor = result.cursor {
                w.u8(ResponseKind.rowsToLimit)
                w.longBytes(result.asRawMutation.encoded())
                w.longBytes(cursor)
            } else {
                w.u8(ResponseKind.rows)
                w.longBytes(result.asRawMutation.encoded())
            }
        case .replicaReadResponse(.digest(let d)):
            w.u8(ResponseKind.digest)
            w.u64(d.high)
            w.u64(d.low)
        case .hintReplay(let h):
            w.u64(h.id)
            w.longBytes(h.mutation.encoded())
        case .hintReplayAck(let id):
            w.u64(id)
        case .admin(let a):
            a.encode(into: &w)
        case .adminResponse(let a):
            a.encode(into: &w)
        case .repair(let r):
            r.encode(into: &w)
        case .repairResponse(let report):
            report.encode(into: &w)
        case .repairProgress(let p):
            p.encode(into: &w)
        case .merkleTreeRequest(let m):
            m.encode(into: &w)
        case .merkleTreeResponse(let t):
            t.encode(into: &w)
        case .streamRanges(let s):
            s.encode(into: &w)
        case .streamRangesDone(let d):
            w.u32(d.mutations)
            w.u64(d.rows)
        }
        return w.bytes
    }

    // MARK: Decoding

    /// Decodes a frame's body. Throws `protocolError` for unknown, reserved or malformed messages
    /// and `invalid` for well-formed values Confab does not support (e.g. consistency THREE).
    package static func decode(_ frame: Frame) throws(WireError) -> WireMessage {
        var r = WireReader(frame.body, context: frame.type.name ?? "message")
        let message: WireMessage
        switch frame.type {
        case .hello:
            let minV = try r.u8("min version")
            let maxV = try r.u8("max version")
            guard minV <= maxV else { throw r.fail("min version \(minV) above max version \(maxV)") }
            message = .hello(
                Hello(
                    minVersion: minV, maxVersion: maxV, clientName: try r.string("client name"),
                    nodeID: try r.string("node id")))
        case .helloAck:
            let version = try r.u8("version")
            let nodeID = try r.string("node id")
            let cluster = try r.string("cluster name")
            let required = try r.u8("authentication flag")
            guard required <= 1 else { throw r.fail("authentication flag \(required)") }
            message = .helloAck(
                HelloAck(
                    version: version, nodeID: nodeID, clusterName: cluster,
                    authenticationRequired: required == 1,
                    challenge: try r.fixedBytes(ClusterSecret.nonceSize, "challenge")))
        case .authenticate:
            let raw = try r.u8("role")
            guard let role = PeerRole(rawValue: raw), role != .client else { throw r.fail("unknown role \(raw)") }
            message = .authenticate(
                Authenticate(
                    role: role, clientNonce: try r.fixedBytes(ClusterSecret.nonceSize, "client nonce"),
                    mac: try r.fixedBytes(ClusterSecret.macSize, "mac")))
        case .authenticateAck:
            let raw = try r.u8("role")
            guard let role = PeerRole(rawValue: raw) else { throw r.fail("unknown role \(raw)") }
            message = .authenticateAck(role: role)
        case .ping:
            message = .ping(nonce: try r.u64("nonce"))
        case .pong:
            message = .pong(nonce: try r.u64("nonce"))
        case .error:
            let code = WireError.Code(rawValue: try r.u16("code"))
            message = .error(WireError(code, try r.longString("message")))
        case .write, .replicaWrite:
            let consistency = try ConsistencyLevel(wireCode: try r.u8("consistency"))
            let keyspace = try r.string("keyspace")
            let table = try r.string("table")
            let mutation = try r.mutation("mutation", max: frame.body.count)
            let request = WriteRequest(keyspace: keyspace, table: table, mutation: mutation, consistency: consistency)
            message = frame.type == .write ? .write(request) : .replicaWrite(request)
        case .writeAck:
            message = .writeAck(WriteAck(acknowledged: try r.u8("acknowledged"), required: try r.u8("required")))
        case .read, .replicaRead:
            let consistency = try ConsistencyLevel(wireCode: try r.u8("consistency"))
            let flags = try r.u8("flags")
            guard flags & ~ReadFlags.all == 0 else { throw r.fail("unknown read flags 0x\(String(flags, radix: 16))") }
            let keyspace = try r.string("keyspace")
            let table = try r.string("table")
            let pk = try r.shortBytes("partition key")
            let lower =
                flags & ReadFlags.hasLower != 0
                ? ClusteringBound(
                    encoded: try r.longBytes("lower bound", max: frame.body.count),
                    inclusive: flags & ReadFlags.lowerInclusive != 0) : nil
            let upper =
                flags & ReadFlags.hasUpper != 0
                ? ClusteringBound(
                    encoded: try r.longBytes("upper bound", max: frame.body.count),
                    inclusive: flags & ReadFlags.upperInclusive != 0) : nil
            let cursor = flags & ReadFlags.hasCursor != 0 ? try r.longBytes("cursor", max: frame.body.count) : nil
            let limit = try r.u32("limit")
            let byteLimit = flags & ReadFlags.hasByteLimit != 0 ? try r.u32("byte limit") : nil
            let request = ReadRequest(
                keyspace: keyspace, table: table, partitionKey: pk, lower: lower, upper: upper,
                reversed: flags & ReadFlags.reversed != 0, limit: limit, cursor: cursor, byteLimit: byteLimit,
                consistency: consistency, digestOnly: flags & ReadFlags.digestOnly != 0)
            message = frame.type == .read ? .read(request) : .replicaRead(request)
        case .readResponse:
            switch try r.u8("kind") {
            case ResponseKind.rows:
                let hasCursor = try r.u8("cursor flag")
                guard hasCursor <= 1 else { throw r.fail("cursor flag \(hasCursor)") }
                let cursor = hasCursor == 1 ? try r.longBytes("cursor", max: frame.body.count) : nil
                let tombstones = try r.u32("tombstones scanned")
                let bytes = try r.longBytes("partition", max: frame.body.count)
                let m: Mutation
                do {
                    m = try Mutation.decode(bytes)
                } catch {
                    throw r.fail("bad partition rows: \(error)")
                }
                message = .readResponse(
                    .rows(
                        ReplicaRows(
                            table: m.table, partitionKey: m.partitionKey, header: m.header,
                            rows: m.rows, cursor: cursor, tombstonesScanned: tombstones)))
            case ResponseKind.digest:
                message = .readResponse(.digest(.init(high: try r.u64("digest"), low: try r.u64("digest"))))
            case let kind:
                throw r.fail("unknown response kind \(kind)")
            }
        case .status:
            message = .status
        case .statusResponse:
            let cluster = try r.string("cluster name")
            let rf = Int(try r.u8("replication factor"))
            let count = try r.u32("node count")
            guard count <= 100_000 else { throw r.fail("implausible node count \(count)") }
            var nodes: [RingNodeStatus] = []
            for _ in 0..<count {
                let state = try r.string("state")
                let up = try r.u8("up flag")
                guard up <= 1 else { throw r.fail("up flag \(up)") }
                var node = RingNodeStatus(
                    state: state, isUp: up == 1, id: try r.string("node id"), host: try r.string("host"),
                    port: try r.u16("port"), loadBytes: try r.u64("load"),
                    tokens: Int(try r.u32("tokens")), ownership: Double(bitPattern: try r.u64("ownership")))
                let listed = try r.u32("token list length")
                guard listed <= 65_536 else { throw r.fail("implausible token list length \(listed)") }
                for _ in 0..<listed { node.tokenValues.append(try r.i64("token")) }
                node.generation = try r.i64("generation")
                node.quarantinedTables = Int(try r.u32("quarantined tables"))
                nodes.append(node)
            }
            var status = RingStatus(clusterName: cluster, replicationFactor: rf, nodes: nodes)
            let keyspaces = try r.u16("keyspace count")
            for _ in 0..<keyspaces {
                status.keyspaces.append(
                    RingStatus.Keyspace(
                        name: try r.string("keyspace"),
                        replicationFactor: Int(try r.u8("keyspace replication factor"))))
            }
            message = .statusResponse(status)
        case .gossipSyn, .gossipAck, .gossipAck2:
            message = .gossip(try GossipMessage.decode(frame.type, from: &r))
        case .replicaWriteAck:
            message = .replicaWriteAck
        case .replicaReadResponse:
            switch try r.u8("kind") {
            case ResponseKind.rows:
                let m = try r.mutation("partition", max: frame.body.count)
                message = .replicaReadResponse(.data(ReplicaReadResult(header: m.header, rows: m.rows)))
            case ResponseKind.rowsToLimit:
                let m = try r.mutation("partition", max: frame.body.count)
                let cursor = try r.longBytes("cursor", max: frame.body.count)
                message = .replicaReadResponse(.data(ReplicaReadResult(header: m.header, rows: m.rows, cursor: cursor)))
            case ResponseKind.digest:
                message = .replicaReadResponse(.digest(ReadDigest(high: try r.u64("digest"), low: try r.u64("digest"))))
            case let kind:
                throw r.fail("unknown response kind \(kind)")
            }
        case .hintReplay:
            let id = try r.u64("hint id")
            message = .hintReplay(HintReplay(id: id, mutation: try r.mutation("mutation", max: frame.body.count)))
        case .hintReplayAck:
            message = .hintReplayAck(id: try r.u64("hint id"))
        case .admin:
            message = .admin(try AdminRequest.decode(from: &r))
        case .adminResponse:
            message = .adminResponse(try AdminResponse.decode(from: &r))
        case .repair:
            message = .repair(try RepairRequest.decode(from: &r))
        case .repairResponse:
            message = .repairResponse(try RepairReport.decode(from: &r))
        case .repairProgress:
            message = .repairProgress(try RepairProgress.decode(from: &r))
        case .merkleTreeRequest:
            message = .merkleTreeRequest(try MerkleTreeRequest.decode(from: &r))
        case .merkleTreeResponse:
            message = .merkleTreeResponse(try MerkleTreeLeaves.decode(from: &r))
        case .streamRangesRequest:
            message = .streamRanges(try StreamRangesRequest.decode(from: &r))
        case .streamRangesDone:
            message = .streamRangesDone(StreamRangesDone(mutations: try r.u32("mutations"), rows: try r.u64("rows")))
        default:
            if frame.type.isReservedInternode {
                throw WireError(
                    .protocolError,
                    "\(frame.type) is reserved for internode messages and not implemented by protocol version \(ProtocolVersion.current)"
                )
            }
            throw WireError(.protocolError, "\(frame.type): not a Confab version \(ProtocolVersion.current) message")
        }
        try r.expectEnd()
        return message
    }
}

extension ReplicaReadResult {
    /// The data as mutation bytes carry it in a ReplicaReadResponse: rows as the replica read
    /// them (not normalized), table id 0 and an empty partition key (the request names both).
    var asRawMutation: Mutation { Mutation(table: 0, partitionKey: [], header: header, rows: rows) }
}

extension WireReader {
    /// A `bytes` field holding the engine's mutation encoding.
    mutating func mutation(_ field: String, max: Int) throws(WireError) -> Mutation {
        let bytes = try longBytes(field, max: max)
        do {
            return try Mutation.decode(bytes)
        } catch {
            throw fail("bad \(field): \(error)")
        }
    }
}

/// Bits of a Read body's flags byte.
enum ReadFlags {
    static let digestOnly: UInt8 = 0x01
    static let reversed: UInt8 = 0x02
    static let hasLower: UInt8 = 0x04
    static let lowerInclusive: UInt8 = 0x08
    static let hasUpper: UInt8 = 0x10
    static let upperInclusive: UInt8 = 0x20
    static let hasCursor: UInt8 = 0x40
    static let hasByteLimit: UInt8 = 0x80
    static let all: UInt8 = 0xFF
}

/// The first byte of a ReadResponse body.
enum ResponseKind {
    static let rows: UInt8 = 0
    static let digest: UInt8 = 1
    /// ReplicaReadResponse only: rows, and the key where the replica stopped at the limit.
    static let rowsToLimit: UInt8 = 2
}
