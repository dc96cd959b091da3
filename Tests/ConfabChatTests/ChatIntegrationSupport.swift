import ConfabChat
import ConfabClient
import ConfabNode
import ConfabRing
import ConfabWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import ServiceLifecycle

/// A real ring (1 or 3 nodes) and a chat server over it, all in this process on free ports.
final class ChatStack: Sendable {
    let directories: [TempDirectory]
    let nodeGroups: [ServiceGroup]
    let nodeTasks: [Task<Void, any Error>]
    let client: ConfabClient
    let server: ChatServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let port: Int
    let nodeAddresses: [NodeAddress]
    static let secret = Array("integration-test-secret-0123456789".utf8)

    private init(
        directories: [TempDirectory], nodeGroups: [ServiceGroup], nodeTasks: [Task<Void, any Error>],
        client: ConfabClient,
        server: ChatServer, group: ServiceGroup, task: Task<Void, any Error>, port: Int, nodeAddresses: [NodeAddress]
    ) {
        self.directories = directories
        self.nodeGroups = nodeGroups
        self.nodeTasks = nodeTasks
        self.client = client
        self.server = server
        self.group = group
        self.task = task
        self.port = port
        self.nodeAddresses = nodeAddresses
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "test.chat")
        logger.logLevel = .warning
        return logger
    }

    static func start(
        nodes nodeCount: Int = 1, configure: (inout ChatServerConfiguration) -> Void = { _ in },
        configureNodes: (inout NodeConfiguration) -> Void = { _ in }
    )
        async throws -> ChatStack
    {
        let logger = quietLogger
        var directories: [TempDirectory] = []
        var groups: [ServiceGroup] = []
        var tasks: [Task<Void, any Error>] = []
        var addresses: [NodeAddress] = []
        for i in 0..<nodeCount {
            let directory = TempDirectory()
            var nodeConfig = NodeConfiguration(dataDirectory: directory.path)
            nodeConfig.tables = ChatSchema.registry
            nodeConfig.listen = NodeAddress(host: "127.0.0.1", port: 0)
            if nodeCount == 1 {
                nodeConfig.replicationFactor = 1
                // The chat tests share two cores with process tests and a browser; a lone node's
                // fsync has been seen to take over the default 2 s there (a 503 in the fresh-clone
                // CI beside a CPU hog). A timeout is an error, never a loss, so a longer one here
                // hides nothing; the multi-node stacks keep 2 s for their failover tests.
                nodeConfig.writeTimeout = .seconds(10)
                nodeConfig.readTimeout = .seconds(10)
            }
            if nodeCount > 1 {
                nodeConfig.seeds = i == 0 ? [] : [addresses[0]]
                nodeConfig.gossipInterval = .milliseconds(100)
                nodeConfig.writeTimeout = .seconds(2)
                nodeConfig.readTimeout = .seconds(3)
            }
            configureNodes(&nodeConfig)
            let node = Node(configuration: nodeConfig, logger: logger)
            let nodeGroup = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: logger))
            tasks.append(Task { try await nodeGroup.run() })
            let bound = try await node.listeningAddress()
            addresses.append(NodeAddress(host: "127.0.0.1", port: bound.port!))
            directories.append(directory)
            groups.append(nodeGroup)
        }
        var clientConfig = ConfabClient.Configuration(nodes: addresses)
        clientConfig.schema = ChatSchema.registry
        clientConfig.requestTimeout = .seconds(10)
        let client = ConfabClient(configuration: clientConfig)
        if nodeCount > 1 {
            for address in addresses {
                var c = ConfabClient.Configuration(nodes: [address])
                c.schema = ChatSchema.registry
                c.requestTimeout = .seconds(2)
                let probe = ConfabClient(configuration: c)
                try await eventuallyTrue("\(address) sees \(nodeCount) normal nodes", within: .seconds(30)) {
                    let s = try await probe.status()
                    return s.nodes.count == nodeCount && s.nodes.allSatisfy { $0.state == "normal" && $0.isUp }
                }
                await probe.shutdown()
            }
        }
        let (server, serverGroup) = makeServer(client: client, configure: configure)
        let nodeGroups = groups
        let nodeTasks = tasks
        let task = Task {
            try await serverGroup.run()
            await client.shutdown()
            for g in nodeGroups { await g.triggerGracefulShutdown() }
            for t in nodeTasks { try await t.value }
        }
        let port = try await server.listeningPort()
        return ChatStack(
            directories: directories, nodeGroups: groups, nodeTasks: tasks, client: client, server: server,
            group: serverGroup, task: task, port: port, nodeAddresses: addresses)
    }

    /// A chat server over `client` on a free port (run its group to start it).
    static func makeServer(
        client: ConfabClient, serverId: String = "test-server",
        configure: (inout ChatServerConfiguration) -> Void = { _ in }
    ) -> (ChatServer, ServiceGroup) {
        var chatConfig = ChatServerConfiguration(serverId: serverId, secret: secret)
        chatConfig.port = 0
        chatConfig.passwordRounds = 1000
        configure(&chatConfig)
        let server = ChatServer(configuration: chatConfig, storage: client, logger: quietLogger)
        let serverGroup = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: quietLogger))
        return (server, serverGroup)
    }

    /// Another chat server over the same ring; stop it with `group.triggerGracefulShutdown()`
    /// and await `task`.
    func startAnotherServer(serverId: String, configure: (inout ChatServerConfiguration) -> Void = { _ in })
        async throws
        -> (server: ChatServer, group: ServiceGroup, task: Task<Void, any Error>, port: Int)
    {
        let (server, group) = Self.makeServer(client: client, serverId: serverId, configure: configure)
        let task = Task { try await group.run() }
        return (server, group, task, try await server.listeningPort())
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    // MARK: HTTP

    struct HTTPResult: @unchecked Sendable {
        var status: Int
        var json: [String: Any]
        var text: String
        var retryAfter: String? = nil
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    func http(
        _ method: HTTPRequest.Method, _ path: String, token: String? = nil, body: [String: Any]? = nil,
        rawBody: String? = nil, port: Int? = nil, origin: String? = nil
    ) async throws -> HTTPResult {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let origin { headers[.origin] = origin }
        var buffer: ByteBuffer? = nil
        if let body { buffer = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)) }
        if let rawBody { buffer = ByteBuffer(string: rawBody) }
        if buffer != nil { headers[.contentType] = "application/json" }
        let request = TestClient.Request(path, method: method, headers: headers, body: buffer)
        let response = try await TestClient.withClient(
            host: "127.0.0.1", port: port ?? self.port, configuration: .init(timeout: .seconds(60))
        ) {
            try await $0.execute(request)
        }
        let text = response.body.flatMap { $0.getString(at: $0.readerIndex, length: $0.readableBytes) } ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        return HTTPResult(
            status: response.status.code, json: json, text: text, retryAfter: response.headers[.retryAfter])
    }

    /// Registers a user; returns their token.
    func register(_ handle: String) async throws -> String {
        let r = try await http(.post, "/api/register", body: ["handle": handle, "password": "password-\(handle)"])
        guard r.status == 201, let token = r.json["token"] as? String else {
            throw TestFailure("register \(handle): \(r.status) \(r.text)")
        }
        return token
    }

    func socket(token: String?, port: Int? = nil, reading: Bool = true) async throws -> TestSocket {
        let query = token.map { "?token=\($0)" } ?? ""
        return TestSocket(url: "ws://127.0.0.1:\(port ?? self.port)/ws\(query)", reading: reading)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A WebSocket client for tests: frames received are kept; `next(type)` waits for the next one of
/// a type (skipping, but keeping, others).
///
/// Each frame's `type` is parsed once, on arrival and outside the lock: `next` then parses only
/// the frames of the type it waits for. It used to parse every unconsumed frame on each 1 ms poll
/// while holding the lock the reader appends under, so a sender whose 160 echoes of 90 kB sat
/// unconsumed parsed megabytes per poll and starved its own reader; the server, seeing that
/// socket stop reading, rightly closed it with 4008 (a CI failure of the slow-reader test).
final class TestSocket: Sendable {
    private let received = NIOLockedValueBox<[(text: String, type: String?, consumed: Bool)]>([])
    private let outgoing: AsyncStream<String>.Continuation
    let task: Task<WebSocketCloseFrame?, any Error>
    /// While false the socket reads nothing (a slow consumer: TCP backpressure builds up).
    let reading: NIOLockedValueBox<Bool>
    /// Set once the connection has ended (closed by either side or failed).
    let ended = NIOLockedValueBox(false)

    init(url: String, reading startReading: Bool = true) {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        outgoing = continuation
        let received = self.received
        let reading = NIOLockedValueBox(startReading)
        self.reading = reading
        var logger = Logger(label: "test.ws")
        logger.logLevel = .error
        let ended = self.ended
        task = Task {
            defer { ended.withLockedValue { $0 = true } }
            return try await WebSocketClient.connect(
                url: url, configuration: .init(maxFrameSize: 4 << 20), logger: logger
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await text in stream { try await outbound.write(.text(text)) }
                    }
                    while !reading.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
                    for try await message in inbound.messages(maxSize: 8 << 20) {
                        if case .text(let s) = message {
                            let type = TestSocket.frameType(s)
                            received.withLockedValue { $0.append((s, type, false)) }
                        }
                    }
                    group.cancelAll()
                }
            }
        }
    }

    func send(_ object: [String: Any]) throws {
        outgoing.yield(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    func sendRaw(_ text: String) { outgoing.yield(text) }

    /// The next unconsumed frame of `type` (and, when given, matching `where`).
    func next(
        _ type: String, timeout: Duration = .seconds(15), where match: @Sendable ([String: Any]) -> Bool = { _ in true }
    )
        async throws -> [String: Any]
    {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found: String? = received.withLockedValue { frames in
                for i in frames.indices where !frames[i].consumed && frames[i].type == type {
                    guard let o = try? JSONSerialization.jsonObject(with: Data(frames[i].text.utf8)) as? [String: Any],
                        match(o)
                    else { continue }
                    frames[i].consumed = true
                    return frames[i].text
                }
                return nil
            }
            if let found { return try JSONSerialization.jsonObject(with: Data(found.utf8)) as! [String: Any] }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw TestFailure(
            "no \(type) frame within \(timeout); got: \(received.withLockedValue { $0.map(\.text) }.suffix(5))")
    }

    /// The next unconsumed frame, whatever it holds (peer-link frames are not JSON).
    func nextText(timeout: Duration = .seconds(15)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found: String? = received.withLockedValue { frames in
                guard let i = frames.firstIndex(where: { !$0.consumed }) else { return nil }
                frames[i].consumed = true
                return frames[i].text
            }
            if let found { return found }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw TestFailure("no frame within \(timeout)")
    }

    /// The raw text frames received from position `index` on (consumed or not).
    func texts(from index: Int) -> [String] {
        received.withLockedValue { r in index < r.count ? r[index...].map(\.text) : [] }
    }

    /// Every frame of `type` received so far (consumed or not).
    func all(_ type: String) -> [[String: Any]] {
        received.withLockedValue { $0.filter { $0.type == type }.map(\.text) }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A JSON frame's `type`, or nil for a frame that is not a JSON object with one.
    static func frameType(_ text: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["type"] as? String
    }

    /// Closes our side and waits for the connection to end.
    func close() async {
        outgoing.finish()
        task.cancel()
        _ = try? await task.value
    }

    /// The close code the server sent, once the connection ends.
    func closeCode(timeout: Duration = .seconds(15)) async throws -> Int? {
        let frame = try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
            group.addTask { try await self.task.value }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestFailure("the connection did not close within \(timeout)")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        return frame.map { Int(UInt16(webSocketErrorCode: $0.closeCode)) }
    }
}

extension TestSocket {
    /// Sends `count` messages of `text` into `chatId` at once (client ids "`prefix`-0"…) and waits
    /// for every ack in order. The server's send limit must allow `count` at once.
    func sendAll(chatId: String, prefix: String, count: Int, text: String) async throws {
        for i in 0..<count {
            try send(["type": "send", "chatId": chatId, "clientId": "\(prefix)-\(i)", "text": text])
        }
        for i in 0..<count {
            _ = try await next("ack", timeout: .seconds(60)) { $0["clientId"] as? String == "\(prefix)-\(i)" }
        }
    }

    /// Catches up from no cursors over this socket, page after page (`limit` 500) until `more` is
    /// false: the client ids received in order, and the number of pages.
    func syncEverything(maxPages: Int = 100) async throws -> (clientIds: [String], pages: Int) {
        var cursors: [String: String] = [:]
        var seen: [String] = []
        var pages = 0
        while pages < maxPages {
            try send(["type": "sync", "cursors": cursors, "limit": 500])
            let page = try await next("sync", timeout: .seconds(30))
            pages += 1
            for m in page["messages"] as? [[String: Any]] ?? [] { seen.append(m["clientId"] as? String ?? "?") }
            cursors = page["cursors"] as? [String: String] ?? cursors
            if page["more"] as? Bool != true { break }
        }
        return (seen, pages)
    }
}
