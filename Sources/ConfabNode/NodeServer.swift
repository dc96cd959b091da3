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
        let (maxFrameBytes, maxInFlight, tls) = (self.maxFrameBytes, maxInFlightPerConnection, self.tls)
        let (handler, clusterSecret) = (self.handler, self.clusterSecret)
        let connections = NodeConnections()
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: false)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameChannelDecoder(maxBodyBytes: maxFrameBytes)))
                        let connection = NodeConnectionServer(
                            handler: handler, maxInFlight: maxInFlight, maxFrameBytes: maxFrameBytes,
                            clusterSecret: clusterSecret)
                        try channel.pipeline.syncOperations.addHandler(connection)
                        let bound = NIOLoopBound(connection, eventLoop: channel.eventLoop)
                        connections.add(channel) { bound.value.drain() }
                    }
                }
                .bind(host: listen.host, port: listen.port).get()
        } catch {
            throw NodeError(.bindFailed, "cannot listen on \(listen.host):\(listen.port): \(error)")
        }
        guard let address = server.localAddress else {
            server.close(promise: nil)
            throw NodeError(.bindFailed, "bound \(listen.host):\(listen.port) but the socket has no local address")
        }
        onListening(address)

        // Until graceful shutdown or cancellation closes the listening socket; then every
        // connection stops reading, answers what it started and closes.
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                _ = try? await server.closeFuture.get()
            } onCancel: {
                server.close(promise: nil)
            }
        } onGracefulShutdown: {
            server.close(promise: nil)
        }
        await connections.drainAll()
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
