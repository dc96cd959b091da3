import ConfabRing
import ConfabWire
import NIOCore
import NIOPosix
import NIOSSL

/// One TCP connection to one node, shared by any number of concurrent requests (multiplexed by
/// stream id). Opened with a Hello handshake, so a connection that exists talks to a Confab node of
/// a compatible protocol version.
package final class NodeConnection: Sendable {
    package let address: NodeAddress
    let channel: any Channel
    /// The id the node reported in its HelloAck.
    package let nodeID: String

    private init(address: NodeAddress, channel: any Channel, nodeID: String) {
        self.address = address
        self.channel = channel
        self.nodeID = nodeID
    }

    package var isActive: Bool { channel.isActive }

    /// The loop the connection's answers complete on.
    package var eventLoop: any EventLoop { channel.eventLoop }

    package static func connect(
        to address: NodeAddress, group: any EventLoopGroup, connectTimeout: Duration,
        requestTimeout: Duration, maxFrameBytes: Int, clientName: String,
        credentials: ClusterCredentials? = nil, tls: NIOSSLContext? = nil
    ) async throws -> NodeConnection {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls { try NodeTLS.addClientHandler(tls, host: address.host, to: channel) }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameChannelDecoder(maxBodyBytes: maxFrameBytes)))
                        try channel.pipeline.syncOperations.addHandler(
                            NodeConnectionHandler(address: "\(address)", maxFrameBytes: maxFrameBytes))
                    }
                }
                .connect(host: address.host, port: address.port).get()
        } catch {
            throw ConnectionError(
                .noNodeReachable, "no node reachable at \(address); is `confab node` running? (\(error))")
        }
        let reply: WireMessage
        do {
            let nodeID = credentials?.role == .node ? credentials?.nodeID ?? "" : ""
            reply = try await send(
                .hello(Hello(clientName: clientName, nodeID: nodeID)), on: channel, timeout: requestTimeout)
            if case .helloAck(let ack) = reply, ack.authenticationRequired, let credentials {
                try await authenticate(
                    credentials, challenge: ack.challenge, address: address, on: channel, timeout: requestTimeout)
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
        switch reply {
        case .helloAck(let ack):
            return NodeConnection(address: address, channel: channel, nodeID: ack.nodeID)
        case .error(let e):
            channel.close(promise: nil)
            throw e
        default:
            channel.close(promise: nil)
            throw ConnectionError(.unexpectedResponse, "\(address) answered Hello with \(reply.type)")
        }
    }

    /// Answers the node's challenge (docs/security.md § Handshake); throws the node's refusal.
    private static func authenticate(
        _ credentials: ClusterCredentials, challenge: [UInt8], address: NodeAddress,
        on channel: any Channel, timeout: Duration
    ) async throws {
        let clientNonce = ClusterSecret.randomBytes(ClusterSecret.nonceSize)
        let nodeID = credentials.role == .node ? credentials.nodeID : ""
        let mac = credentials.secret.answer(
            serverNonce: challenge, clientNonce: clientNonce, role: credentials.role, nodeID: nodeID)
        let reply = try await send(
            .authenticate(Authenticate(role: credentials.role, clientNonce: clientNonce, mac: mac)),
            on: channel, timeout: timeout)
        switch reply {
        case .authenticateAck(credentials.role):
            return
        case .error(let e):
            throw e
        default:
            throw ConnectionError(.unexpectedResponse, "\(address) answered Authenticate with \(reply.type)")
        }
    }

    /// Sends `message` and waits for its answer (an `.error` answer is returned, not thrown).
    package func request(_ message: WireMessage, timeout: Duration) async throws -> WireMessage {
        try await Self.send(message, on: channel, timeout: timeout)
    }

    /// Sends `message` without suspending; the future completes with its answer (an `.error`
    /// answer succeeds it) on the connection's event loop. For callers that react to many answers
    /// from a callback (a coordinator's replica acknowledgements) instead of a task per request.
    package func send(_ message: WireMessage, timeout: Duration) -> EventLoopFuture<WireMessage> {
        Self.sendFuture(message, on: channel, timeout: timeout, onInterim: nil)
    }

    /// Sends `message` and waits for its answer, handing interim answers on its stream (a Repair's
    /// progress) to `onInterim` as they arrive, on the connection's event loop.
    package func request(
        _ message: WireMessage, timeout: Duration,
        onInterim: @escaping @Sendable (WireMessage) -> Void
    ) async throws -> WireMessage {
        try await Self.send(message, on: channel, timeout: timeout, onInterim: onInterim)
    }

    /// Sends a one-way message (gossip) without waiting for an answer. Best effort: the message
    /// may be lost if the connection fails; gossip tolerates loss.
    package func sendOneWay(_ message: WireMessage) {
        channel.writeAndFlush(PendingRequest(message: message, promise: nil, timeout: .zero), promise: nil)
    }

    private static func send(
        _ message: WireMessage, on channel: any Channel, timeout: Duration,
        onInterim: (@Sendable (WireMessage) -> Void)? = nil
    ) async throws -> WireMessage {
        try await sendFuture(message, on: channel, timeout: timeout, onInterim: onInterim).get()
    }

    private static func sendFuture(
        _ message: WireMessage, on channel: any Channel, timeout: Duration,
        onInterim: (@Sendable (WireMessage) -> Void)?
    ) -> EventLoopFuture<WireMessage> {
        let promise = channel.eventLoop.makePromise(of: WireMessage.self)
        channel.writeAndFlush(
            PendingRequest(message: message, promise: promise, timeout: TimeAmount(timeout), onInterim: onInterim)
        )
        .whenFailure { error in
            promise.fail(
                ConnectionError(
                    .connectionClosed, "cannot send to \(channel.remoteAddress.map { "\($0)" } ?? "node"): \(error)"))
        }
        return promise.futureResult
    }

    package func close() async {
        try? await channel.close()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (s, atto) = duration.components
        self = .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
