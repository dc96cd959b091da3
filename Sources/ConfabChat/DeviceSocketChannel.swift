import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// The public port's connections: HTTP/1.1 for the API and the web client (Hummingbird's
/// responder, as `HTTP1WebSocketUpgradeChannel` serves it), and `/ws` upgraded to a device socket
/// that lives in the channel's pipeline (`DeviceSocketHandler`) with no task of its own.
///
/// Why not Hummingbird's WebSocket handler: it runs each connection in a task (with child tasks
/// for pings and closing, and ours for reading and writing), and an idle device held ~47 KiB, 70%
/// of it async task memory (heaptrack, 19,200 connections). A device socket is idle nearly all of
/// its life; in the pipeline it costs its channel, its handlers and its queue.
struct DeviceSocketChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        /// The socket is a device's now; its handler does the rest.
        case device
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case failedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: Responder
    /// The path that upgrades (`/ws`).
    let path: String
    let maxFrameBytes: Int
    /// Builds the handler of an upgraded socket from its request head (on the channel's loop).
    let accept: @Sendable (any Channel, HTTPRequestHead) -> DeviceSocketHandler

    init(
        responder: @escaping Responder, path: String, maxFrameBytes: Int,
        accept: @escaping @Sendable (any Channel, HTTPRequestHead) -> DeviceSocketHandler
    ) {
        self.path = path
        self.maxFrameBytes = maxFrameBytes
        self.accept = accept
        // A second request on a kept-alive connection cannot upgrade: send it again on a new one
        // (as Hummingbird's own upgrade channel does).
        self.responder = { request, writer, channel in
            if request.headers[.upgrade]?.lowercased() == "websocket" {
                var location = request.uri.path
                if let query = request.uri.query { location += "?\(query)" }
                try await writer.writeResponse(
                    HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location]))
                throw ChannelError.outputClosed
            }
            try await responder(request, writer, channel)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let upgradeAttempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let (path, maxFrameBytes, accept) = (self.path, self.maxFrameBytes, self.accept)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: maxFrameBytes,
                // NIO's own handler answers a decoder error with a close frame and closes the
                // socket at once, with the rest of the oversized frame unread: the kernel then
                // resets the connection, and the device may lose the close frame (and its 1009)
                // to the reset. `DeviceSocketHandler.errorCaught` closes gracefully instead.
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    upgradeAttempted.value = true
                    let requested = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                    return channel.eventLoop.makeSucceededFuture(requested == path ? HTTPHeaders() : nil)
                },
                upgradePipelineHandler: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
                                maxAccumulatedFrameSize: maxFrameBytes))
                        try channel.pipeline.syncOperations.addHandler(accept(channel, head))
                        return UpgradeResult.device
                    }
                })
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                        return upgradeAttempted.value
                            ? UpgradeResult.failedUpgrade(asyncChannel) : UpgradeResult.notUpgraded(asyncChannel)
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(
                upgradeConfiguration: serverUpgrade)
            configuration.enablePipelining = false  // NIOAsyncChannel serializes HTTP requests
            configuration.enableErrorHandling = false  // Hummingbird answers HTTP errors
            configuration.enableResponseHeaderValidation = false  // HTTPTypes validates already
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: configuration)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .device:
                return
            case .notUpgraded(let http1):
                await handleHTTP(asyncChannel: http1, logger: logger)
            case .failedUpgrade(let http1):
                try await http1.executeThenClose { _, outbound in
                    try await outbound.write(
                        contentsOf: [
                            .head(
                                HTTPResponse(
                                    status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])),
                            .end(nil),
                        ])
                }
            }
        } catch {
            logger.debug("connection ended before its first request", metadata: ["error": "\(error)"])
        }
    }
}
