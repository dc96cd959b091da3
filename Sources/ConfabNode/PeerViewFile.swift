import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation

/// The ring as this node last saw it, kept in `<data>/ring-view` so a restart with saved tokens
/// does not serve as a ring of itself until gossip arrives: the saved peers are known at once
/// (not yet alive), so writes for their ranges are hinted or refused and reads use live replicas.
///
/// Bytes (docs/node.md § Ring view file): the magic "CFRV", a format version byte (1), then one
/// record per peer: u32 payload length, u32 masked CRC32C of the payload, the payload. A payload
/// holds the peer's id, address ("host:port") and status (each a u16 length and UTF-8), its gossip
/// generation (i64), a u32 token count and the tokens (i64 each). Integers are little-endian.
///
/// The file is rewritten whole (temp file, fsync, rename, directory fsync) whenever the view
/// changes, so a crash leaves the old or the new view. A damaged file is refused as a whole:
/// the node then waits to hear from a peer before serving, which is always safe.
struct PeerViewFile {
    static let fileName = "ring-view"
    static let magic: [UInt8] = Array("CFRV".utf8)
    static let formatVersion: UInt8 = 1

    /// One peer as saved: enough for the gossiper to place it in the token ring.
    struct Peer: Hashable, Sendable {
        var node: NodeID
        var generation: Int64
        var status: NodeStatus
        var tokens: [Token]
    }

    var peers: [Peer]

    /// Every known peer except this node and those that left.
    init(gossiper g: Gossiper) {
        peers = g.states.values.compactMap { s -> Peer? in
            guard s.node != g.local, let status = s.status, status != .left else { return nil }
            return Peer(node: s.node, generation: s.heartbeat.generation, status: status, tokens: s.tokens.sorted())
        }.sorted { $0.node < $1.node }
    }

    init(peers: [Peer]) { self.peers = peers }

    /// Gossip states for the saved peers, at version 0 so any state a peer gossips is newer.
    var endpointStates: [EndpointState] {
        peers.map { p in
            EndpointState(
                node: p.node, heartbeat: HeartbeatState(generation: p.generation, version: 0),
                applicationStates: [
                    .address: VersionedValue(p.node.address.description, version: 0),
                    .status: VersionedValue(p.status.rawValue, version: 0),
                    .tokens: VersionedValue(p.tokens.map(\.description).joined(separator: ","), version: 0),
                ])
        }
    }

    /// Equal when the saved bytes would be: addresses are compared too (NodeID equality is id only).
    func sameBytes(as other: PeerViewFile) -> Bool { encoded() == other.encoded() }

    func encoded() -> [UInt8] {
        var out = Self.magic + [Self.formatVersion]
        for p in peers {
            var payload: [UInt8] = []
            Self.appendString(p.node.id, to: &payload)
            Self.appendString(p.node.address.description, to: &payload)
            Self.appendString(p.status.rawValue, to: &payload)
            Self.appendInt(UInt64(bitPattern: p.generation), bytes: 8, to: &payload)
            Self.appendInt(UInt64(p.tokens.count), bytes: 4, to: &payload)
            for t in p.tokens { Self.appendInt(UInt64(bitPattern: t.value), bytes: 8, to: &payload) }
            Self.appendInt(UInt64(payload.count), bytes: 4, to: &out)
            Self.appendInt(UInt64(CRC32C.mask(CRC32C.checksum(payload))), bytes: 4, to: &out)
            out += payload
        }
        return out
    }

    static func decode(_ bytes: [UInt8], path: String) throws(NodeError) -> PeerViewFile {
        func bad(_ what: String) -> NodeError {
            NodeError(.dataDirectory, "\(path): \(what); the ring view is ignored (delete the file to silence this)")
        }
        guard bytes.count >= 5, Array(bytes[0..<4]) == magic else { throw bad("not a ring view file (bad magic)") }
        guard bytes[4] == formatVersion else { throw bad("unsupported ring view format version \(bytes[4])") }
        var reader = Reader(bytes: bytes, offset: 5)
        var peers: [Peer] = []
        while !reader.atEnd {
            guard let length = reader.int(4), let crc = reader.int(4), let payload = reader.bytes(Int(length)) else {
                throw bad("truncated record at byte \(reader.offset)")
            }
            guard UInt32(crc) == CRC32C.mask(CRC32C.checksum(payload)) else {
                throw bad("record checksum mismatch at byte \(reader.offset - payload.count)")
            }
            var r = Reader(bytes: payload, offset: 0)
            guard let id = r.string(), let addressText = r.string(), let address = NodeAddress(hostPort: addressText),
                let statusText = r.string(), let status = NodeStatus(rawValue: statusText),
                let generation = r.int(8), let count = r.int(4)
            else {
                throw bad("malformed peer record")
            }
            var tokens: [Token] = []
            for _ in 0..<count {
                guard let t = r.int(8) else { throw bad("malformed peer record (tokens)") }
                tokens.append(Token(Int64(bitPattern: t)))
            }
            guard r.atEnd else { throw bad("trailing bytes in a peer record") }
            peers.append(
                Peer(
                    node: NodeID(id: id, address: address), generation: Int64(bitPattern: generation),
                    status: status, tokens: tokens))
        }
        return PeerViewFile(peers: peers)
    }

    /// The saved view, or nil when the node never saved one. Blocking.
    static func load(dataDirectory: String) throws(NodeError) -> PeerViewFile? {
        let path = (dataDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try decode(Array(data), path: path)
    }

    /// Blocking.
    func save(dataDirectory: String) throws(NodeError) {
        try NodeStateFiles.writeAtomically(
            encoded(), to: (dataDirectory as NSString).appendingPathComponent(Self.fileName))
    }

    private static func appendString(_ s: String, to out: inout [UInt8]) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        appendInt(UInt64(utf8.count), bytes: 2, to: &out)
        out += utf8
    }

    private static func appendInt(_ v: UInt64, bytes: Int, to out: inout [UInt8]) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset: Int
        var atEnd: Bool { offset >= bytes.count }

        mutating func bytes(_ n: Int) -> [UInt8]? {
            guard n >= 0, bytes.count - offset >= n else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }

        mutating func int(_ n: Int) -> UInt64? {
            guard let b = bytes(n) else { return nil }
            return b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }

        mutating func string() -> String? {
            guard let n = int(2), let b = bytes(Int(n)) else { return nil }
            return String(validating: b, as: UTF8.self)
        }
    }
}
