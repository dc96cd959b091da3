import Crypto

/// The key every node and operator of one ring shares (`cluster-secret` in the ring directory),
/// and the challenge–response computed with it (docs/security.md § Handshake).
///
/// Why a challenge–response and not a token: the answer covers the node's fresh per-connection
/// challenge, so one captured from the wire is worthless on any other connection; the secret
/// itself never travels.
public struct ClusterSecret: Hashable, Sendable, CustomStringConvertible {
    /// Bytes of a secret, and of each side's nonce.
    public static let size = 32
    public static let nonceSize = 32
    /// Bytes of an answer (HMAC-SHA256).
    public static let macSize = 32
    /// Domain separation: this key signs nothing else with the same layout.
    static let label: [UInt8] = Array("confab-auth-v2".utf8)

    private let key: SymmetricKey

    /// - Throws: `WireError.invalid` if `bytes` is not `size` long.
    public init(bytes: [UInt8]) throws(WireError) {
        guard bytes.count == Self.size else {
            throw WireError(.invalid, "a cluster secret is \(Self.size) bytes, not \(bytes.count)")
        }
        key = SymmetricKey(data: bytes)
    }

    /// A new random secret (the system CSPRNG).
    public static func generate() -> [UInt8] { randomBytes(size) }

    /// `count` bytes from the system CSPRNG (`SystemRandomNumberGenerator` is getrandom(2) on
    /// Linux, arc4random on Darwin).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// The bytes the MAC covers: label ‖ server nonce ‖ client nonce ‖ role ‖ u16 length ‖ node id.
    /// Lengths are fixed or prefixed, so no two different inputs share a transcript.
    public static func transcript(serverNonce: [UInt8], clientNonce: [UInt8], role: PeerRole, nodeID: String) -> [UInt8]
    {
        var w = WireWriter()
        w.bytes += label
        w.bytes += serverNonce
        w.bytes += clientNonce
        w.u8(role.rawValue)
        w.string(nodeID)
        return w.bytes
    }

    /// HMAC-SHA256(secret, transcript): what the connecting side sends in Authenticate.
    public func answer(serverNonce: [UInt8], clientNonce: [UInt8], role: PeerRole, nodeID: String) -> [UInt8] {
        let data = Self.transcript(serverNonce: serverNonce, clientNonce: clientNonce, role: role, nodeID: nodeID)
        return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
    }

    /// Whether `mac` is the answer for these inputs, compared in constant time.
    public func verify(_ mac: [UInt8], serverNonce: [UInt8], clientNonce: [UInt8], role: PeerRole, nodeID: String)
        -> Bool
    {
        let data = Self.transcript(serverNonce: serverNonce, clientNonce: clientNonce, role: role, nodeID: nodeID)
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: data, using: key)
    }

    /// Constant time (SymmetricKey's `==`).
    public static func == (a: ClusterSecret, b: ClusterSecret) -> Bool { a.key == b.key }

    /// Feeds nothing: a hash of the key would be a fast oracle for it, and equal values still hash alike.
    public func hash(into hasher: inout Hasher) {}

    /// Never the key.
    public var description: String { "ClusterSecret(\(Self.size) bytes)" }
}

/// What a connecting side proves: the secret, the role it asks for and (for a node) its id.
public struct ClusterCredentials: Sendable {
    public var secret: ClusterSecret
    public var role: PeerRole
    /// The connecting node's id (sent in Hello and covered by the answer); empty for an operator.
    public var nodeID: String

    public init(secret: ClusterSecret, role: PeerRole, nodeID: String = "") {
        self.secret = secret
        self.role = role
        self.nodeID = nodeID
    }
}
