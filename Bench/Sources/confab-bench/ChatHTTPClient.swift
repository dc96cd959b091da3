import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for the chat server's JSON API (register, route, chats), over SwiftNIO.
/// Only the setup of `confab-bench chat` goes through it, never a measured path, so it keeps one
/// keep-alive connection and one request in flight at a time; `ChatHTTPPool` runs several.
final class ChatHTTPConnection: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: Data
        /// The body as a JSON object (nil when it is not one).
        var object: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    let channel: any Channel
    let host: String
    let port: Int
    private let handler: ResponseCollector

    private init(channel: any Channel, handler: ResponseCollector, host: String, port: Int) {
        self.channel = channel
        self.handler = handler
        self.host = host
        self.port = port
    }

    static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> ChatHTTPConnection {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        return ChatHTTPConnection(channel: channel, handler: collector, host: host, port: port)
    }

    /// One request; `json` is encoded as the body. Waits for the whole response.
    func request(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, token: String? = nil) async throws
        -> Response
    {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Connection", value: "keep-alive")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let body: ByteBuffer?
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json)
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(data.count))
            body = channel.allocator.buffer(bytes: data)
        } else {
            if method == .POST { headers.add(name: "Content-Length", value: "0") }
            body = nil
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let handler = self.handler
        let channel = self.channel
        channel.eventLoop.execute {
            // A stuck request closes the connection, which fails every request waiting on it.
            let timer = channel.eventLoop.scheduleTask(in: .seconds(60)) { channel.close(promise: nil) }
            promise.futureResult.whenComplete { _ in timer.cancel() }
            handler.enqueue(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { promise.fail($0) }
        }
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }

    /// Collects response parts into `Response`s and completes the oldest waiting request.
    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart

        // Touched only on the channel's event loop.
        private var waiting = CircularBuffer<EventLoopPromise<Response>>()
        private var status = 0
        private var body = Data()

        func enqueue(_ promise: EventLoopPromise<Response>) { waiting.append(promise) }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
                body = Data()
            case .body(var buffer):
                if let bytes = buffer.readBytes(length: buffer.readableBytes) { body.append(contentsOf: bytes) }
            case .end:
                if !waiting.isEmpty { waiting.removeFirst().succeed(Response(status: status, body: body)) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            failAll(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            failAll(ChatBenchError("the chat server closed the HTTP connection"))
            context.fireChannelInactive()
        }

        private func failAll(_ error: any Error) {
            while !waiting.isEmpty { waiting.removeFirst().fail(error) }
        }
    }
}

/// A few keep-alive connections to one chat server, for setup requests run in parallel.
final class ChatHTTPPool: Sendable {
    let baseURL: String
    private let connections: [ChatHTTPConnection]

    private init(baseURL: String, connections: [ChatHTTPConnection]) {
        self.baseURL = baseURL
        self.connections = connections
    }

    static func connect(baseURL: String, size: Int, group: any EventLoopGroup) async throws -> ChatHTTPPool {
        let (host, port) = try ChatURL.hostPort(baseURL)
        var connections: [ChatHTTPConnection] = []
        for _ in 0..<size {
            connections.append(try await ChatHTTPConnection.connect(host: host, port: port, group: group))
        }
        return ChatHTTPPool(baseURL: baseURL, connections: connections)
    }

    var size: Int { connections.count }
    func connection(_ i: Int) -> ChatHTTPConnection { connections[i % connections.count] }

    func close() async {
        for c in connections { await c.close() }
    }

    /// Runs `work(i, connection)` for i in 0..<count, `size` at a time (one per connection).
    func forEach<T: Sendable>(_ count: Int, _ work: @escaping @Sendable (Int, ChatHTTPConnection) async throws -> T)
        async throws -> [T]
    {
        try await withThrowingTaskGroup(of: [(Int, T)].self) { group in
            for lane in 0..<min(size, max(count, 1)) {
                let connection = connections[lane]
                let lanes = size
                group.addTask {
                    var out: [(Int, T)] = []
                    var i = lane
                    while i < count {
                        out.append((i, try await work(i, connection)))
                        i += lanes
                    }
                    return out
                }
            }
            var all: [(Int, T)] = []
            for try await part in group { all += part }
            return all.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

enum ChatURL {
    /// "http://127.0.0.1:8080" → ("127.0.0.1", 8080).
    static func hostPort(_ url: String) throws -> (String, Int) {
        guard let u = URL(string: url), let host = u.host, let port = u.port else {
            throw ChatBenchError("not an http://host:port URL: \(url)")
        }
        return (host, port)
    }
}
