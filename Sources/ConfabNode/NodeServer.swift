import ConfabTransport
import ConfabWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The TCP server: accepts connections and runs each one's request loop.
///
/// Per connection: frames are read in order and each request runs concurrently (responses may
/// leave in any order; the stream id pairs them with requests). At most
/// `maxInFlightPerConnection` requests run at once; beyond that the loop stops reading, the
/// socket's receive buffer fills and TCP flow control slows the client.
///
/// On graceful shutdown the listening socket closes first (no new connections), each connection
/// stops reading new frames, finishes and answers the requests it already started, then closes.
struct NodeServer: Sendable {
    let listen: (host: String, port: Int)
    let maxInFlightPerConnection: Int
    let maxFrameBytes: Int
    let handler: RequestHandler
    /// Nil: no authentication, every connection may send everything (tests, `--insecure-no-cluster-secret`).
    var clusterSecret: ClusterSecret? = nil
    /// Nil: plain TCP (the default; `NodeTLS`).
    var tls: NIOSSLContext? = nil
    let group: any EventLoopGroup
    let logger: Logger

    /// Binds, reports the bound address, then serves until graceful shutdown (or cancellation).
    func run(onListening: @Sendable (SocketAddress) -> Void) async throws {
        let maxFrameBytes = self.maxFrameBytes
        let tls = self.tls
        let server: NIOAsyncChannel<NIOAsyncChannel<InboundFrame, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: false)
                .bind(host: listen.host, port: listen.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameChannelDecoder(maxBodyBytes: maxFrameBytes)))
                        return try NIOAsyncChannel<InboundFrame, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw NodeError(.bindFailed, "cannot listen on \(listen.host):\(listen.port): \(error)")
        }
        guard let address = server.channel.localAddress else {
            throw NodeError(.bindFailed, "bound \(listen.host):\(listen.port) but the socket has no local address")
        }
        onListening(address)

        let serverChannel = server.channel
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { connections in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        connections.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            serverChannel.close(promise: nil)
        }
    }

    /// One connection's loop: read frames, run requests (bounded), write responses, close.
    private func serve(_ connection: NIOAsyncChannel<InboundFrame, ByteBuffer>) async {
        handler.metrics.connectionsOpened.increment()
        defer { handler.metrics.connectionsClosed.increment() }
        let peer = connection.channel.remoteAddress.map { "\($0)" } ?? "?"
        let maxInFlight = maxInFlightPerConnection
        let handler = self.handler
        let maxFrameBytes = self.maxFrameBytes
        var gate = ConnectionGate(secret: clusterSecret, localNodeID: handler.nodeID, clusterName: handler.clusterName)
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { requests in
                    // Child tasks not yet reaped; at least as many as are running.
                    var unreaped = 0
                    loop: for try await item in inbound.cancelOnGracefulShutdown() {
                        switch item {
                        case .frame(let frame):
                            let peerNode: String?
                            switch gate.screen(frame) {
                            case .pass(let node):
                                peerNode = node
                            case .answer(let answer, let close):
                                handler.metrics.request(frame.type)
                                if case .error(let e) = answer {
                                    handler.metrics.error(frame.type, e.code)
                                    handler.logger.info(
                                        "refused a frame",
                                        metadata: [
                                            "peer": "\(peer)", "type": "\(frame.type)", "role": "\(gate.role)",
                                            "error": "\(e)",
                                        ])
                                }
                                try await outbound.write(
                                    Self.encode(answer, streamID: frame.streamID, maxFrameBytes: maxFrameBytes))
                                if close { break loop }
                                continue loop
                            }
                            if unreaped >= maxInFlight {
                                try await requests.next()
                                unreaped -= 1
                            }
                            unreaped += 1
                            requests.addTask {
                                // Interim frames (repair progress) go out on the request's stream
                                // before its response; a failed write surfaces on the response.
                                let interim: @Sendable (WireMessage) async -> Void = { message in
                                    try? await outbound.write(
                                        Self.encode(
                                            message, streamID: frame.streamID,
                                            maxFrameBytes: maxFrameBytes))
                                }
                                guard
                                    let response = await handler.respond(
                                        to: frame, peerNode: peerNode, interim: interim)
                                else { return }
                                // Written or failed: either way the request is over.
                                defer { handler.answered(frame, with: response) }
                                try await outbound.write(
                                    Self.encode(
                                        response, streamID: frame.streamID,
                                        maxFrameBytes: maxFrameBytes))
                            }
                        case .damaged(let streamID, let error):
                            handler.logger.debug("damaged frame", metadata: ["peer": "\(peer)", "error": "\(error)"])
                            handler.metrics.error(.error, error.code)
                            try await outbound.write(
                                ByteBuffer(bytes: WireMessage.error(error).encodedFrame(streamID: streamID)))
                        case .fatal(let streamID, let error):
                            handler.logger.info(
                                "closing connection after a framing error",
                                metadata: ["peer": "\(peer)", "error": "\(error)"])
                            handler.metrics.error(.error, error.code)
                            try await outbound.write(
                                ByteBuffer(bytes: WireMessage.error(error).encodedFrame(streamID: streamID)))
                            break loop
                        }
                    }
                    try await requests.waitForAll()
                }
            }
        } catch {
            handler.logger.debug("connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    /// The response frame; a response too large for one frame becomes a `tooLarge` error.
    static func encode(_ response: WireMessage, streamID: UInt32, maxFrameBytes: Int) -> ByteBuffer {
        let frame = response.frame(streamID: streamID)
        if frame.body.count > maxFrameBytes {
            let error = WireError(
                .tooLarge,
                "the response of \(frame.body.count) bytes exceeds the \(maxFrameBytes)-byte frame limit; lower the limit or narrow the slice"
            )
            return ByteBuffer(bytes: WireMessage.error(error).encodedFrame(streamID: streamID))
        }
        return ByteBuffer(bytes: frame.encoded())
    }
}
