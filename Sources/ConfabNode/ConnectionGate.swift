import ConfabWire

/// One connection's authentication state, and the check every request frame passes before it
/// runs (docs/security.md): which role the connection has, the challenge it was issued, and
/// whether it already answered it.
///
/// Why in the connection loop and not the handler: Hello and Authenticate change what later
/// frames on the same connection may do, so they are handled in order, before the next frame is
/// read; every other request runs concurrently, after this check.
struct ConnectionGate {
    /// What the loop does with a frame.
    enum Verdict {
        /// Run it; `node` is the authenticated peer node's id (nil for other roles, or without a secret).
        case pass(node: String?)
        /// Answer this on the frame's stream instead of running it; close afterwards when `close`.
        case answer(WireMessage, close: Bool)
    }

    /// Nil: the node runs without a cluster secret, every connection may send everything.
    private let secret: ClusterSecret?
    private let localNodeID: String
    private let clusterName: String
    /// This connection's challenge, fresh per connection.
    private let challenge: [UInt8]
    private var helloNodeID: String?
    private var answered = false
    private(set) var role: PeerRole = .client
    private var authenticatedNode: String?

    init(
        secret: ClusterSecret?, localNodeID: String, clusterName: String,
        challenge: [UInt8] = ClusterSecret.randomBytes(ClusterSecret.nonceSize)
    ) {
        self.secret = secret
        self.localNodeID = localNodeID
        self.clusterName = clusterName
        self.challenge = challenge
    }

    mutating func screen(_ frame: Frame) -> Verdict {
        switch frame.type {
        case .hello:
            return hello(frame)
        case .authenticate:
            return authenticate(frame)
        default:
            guard secret != nil else { return .pass(node: nil) }
            let required = frame.type.requiredRole
            if role >= required { return .pass(node: authenticatedNode) }
            return .answer(.error(Self.refusal(frame.type, required: required, role: role)), close: false)
        }
    }

    /// Why a role may not send a message, and what to do about it.
    static func refusal(_ type: MessageType, required: PeerRole, role: PeerRole) -> WireError {
        let what = required == .node ? "an internode message" : "an operator message"
        if role == .client {
            let how =
                required == .node
                ? "only nodes of this ring, authenticated with its cluster secret, may send it"
                : "authenticate as an operator with the ring's cluster secret: the confab CLI reads it from the ring directory's cluster-secret file (--dir), or from --cluster-secret-file / $CONFAB_CLUSTER_SECRET_FILE"
            return WireError(
                .unauthorized, "\(type) is \(what) and this connection has not authenticated; \(how) (docs/security.md)"
            )
        }
        return WireError(
            .forbidden,
            "\(type) is \(what); this connection authenticated as \(role), which may not send it (docs/security.md)")
    }

    private mutating func hello(_ frame: Frame) -> Verdict {
        let h: Hello
        do {
            guard case .hello(let decoded) = try WireMessage.decode(frame) else { return .pass(node: nil) }
            h = decoded
        } catch {
            return .answer(.error(error), close: false)
        }
        let v = ProtocolVersion.current
        guard h.minVersion <= v, v <= h.maxVersion else {
            return .answer(
                .error(
                    WireError(
                        .protocolError,
                        "no common protocol version: the client speaks \(h.minVersion)...\(h.maxVersion), this node speaks \(v)"
                    )), close: false)
        }
        if answered, helloNodeID != h.nodeID {
            // The node id was bound into the answer already; it does not change afterwards.
            return .answer(
                .error(
                    WireError(
                        .protocolError,
                        "this connection authenticated already; a second Hello may not change its node id")),
                close: true)
        }
        helloNodeID = h.nodeID
        return .answer(
            .helloAck(
                HelloAck(
                    version: v, nodeID: localNodeID, clusterName: clusterName,
                    authenticationRequired: secret != nil,
                    challenge: secret != nil ? challenge : [UInt8](repeating: 0, count: ClusterSecret.nonceSize))),
            close: false)
    }

    private mutating func authenticate(_ frame: Frame) -> Verdict {
        let request: Authenticate
        do {
            guard case .authenticate(let decoded) = try WireMessage.decode(frame) else { return .pass(node: nil) }
            request = decoded
        } catch {
            return .answer(.error(error), close: true)
        }
        guard let secret else {
            // Nothing to prove: without a secret every connection may send everything already.
            return .answer(.authenticateAck(role: request.role), close: false)
        }
        guard let nodeID = helloNodeID else {
            return .answer(
                .error(WireError(.unauthorized, "send Hello first: the challenge to answer comes in its HelloAck")),
                close: true)
        }
        guard !answered else {
            return .answer(
                .error(
                    WireError(
                        .unauthorized,
                        "this connection already answered its challenge; open a new connection to authenticate again")),
                close: true)
        }
        answered = true
        if request.role == .node, nodeID.isEmpty {
            return .answer(
                .error(
                    WireError(.unauthorized, "a node authenticates with its node id in Hello; this Hello named none")),
                close: true)
        }
        guard
            secret.verify(
                request.mac, serverNonce: challenge, clientNonce: request.clientNonce, role: request.role,
                nodeID: nodeID)
        else {
            return .answer(
                .error(
                    WireError(
                        .unauthorized,
                        """
                        authentication failed: the answer does not match this connection's challenge (a different cluster \
                        secret, an answer made for another connection, or a node id other than the one in Hello); \
                        check that the caller and this node use the same ring's cluster-secret file
                        """)), close: true)
        }
        role = request.role
        authenticatedNode = request.role == .node ? nodeID : nil
        return .answer(.authenticateAck(role: request.role), close: false)
    }
}
