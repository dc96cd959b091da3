import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A node's operations port: `GET /metrics` (Prometheus text), `/health` (the process is up)
/// and `/ready` (`NodeReadiness`: 200 when ready, 503 with the reasons when not). Kept off the
/// data port so a scraper or load balancer never speaks the Confab protocol, and so it can be
/// firewalled apart. Plain HTTP/1.1, one request per connection is enough for scrapers.
public final class OperationsHTTPServer: Sendable {
    /// The response to one operations request.
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: [UInt8]

        public init(status: HTTPResponseStatus, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        /// A JSON body (ready/health answers); keys sorted so answers diff cleanly.
        public static func json(_ status: HTTPResponseStatus, _ object: [String: Any]) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Response(status: status, contentType: "application/json", body: Array(data) + [0x0A])
        }
    }

    /// The Prometheus text exposition format's content type (version 0.0.4).
    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    private let channel: any Channel

    /// The bound address (port 0 resolved).
    public var localAddress: SocketAddress? { channel.localAddress }

    private init(channel: any Channel) { self.channel = channel }

    /// Binds `host:port` (0: a free port) and serves `route` for each GET until `close()`.
    public static func start(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger, route: @escaping @Sendable (String) async -> Response
    ) async throws
        -> OperationsHTTPServer
    {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(OperationsHTTPHandler(route: route, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        return OperationsHTTPServer(channel: channel)
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Answers each request through the async `route`, then closes the connection.
private final class OperationsHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: @Sendable (String) async -> OperationsHTTPServer.Response
    private let logger: Logger
    private var head: HTTPRequestHead?

    init(route: @escaping @Sendable (String) async -> OperationsHTTPServer.Response, logger: Logger) {
        self.route = route
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            let method = head.method
            let route = self.route
            let loop = context.eventLoop
            let box = NIOLoopBound(context, eventLoop: loop)
            let version = head.version
            let promise = loop.makePromise(of: OperationsHTTPServer.Response.self)
            if method == .GET || method == .HEAD {
                promise.completeWithTask { await route(path) }
            } else {
                promise.succeed(.json(.methodNotAllowed, ["error": "only GET is served here"]))
            }
            promise.futureResult.whenSuccess { response in
                let context = box.value
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: response.contentType)
                headers.add(name: "Content-Length", value: String(response.body.count))
                headers.add(name: "Connection", value: "close")
                context.write(
                    NIOAny(
                        HTTPServerResponsePart.head(
                            HTTPResponseHead(
                                version: version, status: response.status,
                                headers: headers))), promise: nil)
                if method != .HEAD {
                    context.write(
                        NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil
                    )
                }
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
                    box.value.close(promise: nil)
                }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("operations connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
