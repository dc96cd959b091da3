import ConfabChat
import ConfabClient
import ConfabProcess
import ConfabRing
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore

/// A deployment of real processes on 127.0.0.1: a 3-node RF-3 ring of `confab node` and chat servers
/// (`confab chat serve`, short heartbeat TTL so failover tests stay quick), sharing one secret file,
/// each started by ConfabProcess's launcher (`TestRing`, `TestServer`).
final class ChatClusterProcesses: Sendable {
    let dir: TempDirectory
    let binary: String
    /// The first node's port (every chat server is given all three).
    let nodePort: Int
    let nodePorts: [Int]
    private let nodes: NIOLockedValueBox<[TestServer]>
    private let chats: NIOLockedValueBox<[String: (server: TestServer, port: Int)]>
    static let heartbeatTTL = 3

    private init(dir: TempDirectory, binary: String, nodes: [TestServer], nodePorts: [Int]) {
        self.dir = dir
        self.binary = binary
        self.nodes = NIOLockedValueBox(nodes)
        self.nodePorts = nodePorts
        self.nodePort = nodePorts[0]
        self.chats = NIOLockedValueBox([:])
    }

    /// `serverArguments` go to every `confab chat serve` (e.g. a small send budget).
    static func start(servers: [String], serverArguments: [String] = []) async throws -> ChatClusterProcesses {
        guard let binary = confabBinary() else {
            throw TestFailure("confab executable not found next to the test bundle")
        }
        let dir = TempDirectory("confab-chat-cluster")
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        _ = FileManager.default.createFile(
            atPath: "\(dir.path)/chat-secret", contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        let ring = try await TestRing.start(binary: binary, directory: dir.path)
        let cluster = ChatClusterProcesses(dir: dir, binary: binary, nodes: ring.nodes, nodePorts: ring.ports)
        do {
            for id in servers { try await cluster.startServer(id, arguments: serverArguments) }
            try await cluster.waitForServers(count: servers.count)
        } catch {
            cluster.killAll()
            throw error
        }
        return cluster
    }

    func startServer(_ id: String, arguments: [String] = []) async throws {
        let server = try TestServer(
            binary: binary,
            arguments: [
                "chat", "serve", "--port", "0", "--nodes", nodePorts.map { "127.0.0.1:\($0)" }.joined(separator: ","),
                "--server-id", id,
                "--secret-file", "\(dir.path)/chat-secret", "--password-rounds", "1000", "--heartbeat-ttl",
                "\(Self.heartbeatTTL)",
                // Tests sign up to 100 users from 127.0.0.1 at once: lift the per-address limit.
                "--login-rate", "1000", "--login-burst", "1000",
                "--log-level", "warning",
            ] + arguments, logDir: dir.path, tag: id)
        let port = try await server.port(after: "confab chat \(id) listening on http://127.0.0.1:")
        chats.withLockedValue { $0[id] = (server, port) }
    }

    func port(_ id: String) -> Int { chats.withLockedValue { $0[id]!.port } }
    var serverIds: [String] { chats.withLockedValue { Array($0.keys).sorted() } }

    func waitForServers(count: Int, within: Duration = .seconds(20)) async throws {
        for id in serverIds {
            let p = port(id)
            try await eventuallyTrue("\(id) sees \(count) chat servers", within: within) {
                try await ClusterHTTP.request(.get, "/api/health", port: p).json["servers"] as? Int == count
            }
        }
    }

    /// SIGKILL: no graceful close, no deregistration — the others notice through the heartbeat TTL.
    func sigkill(_ id: String) {
        guard let entry = chats.withLockedValue({ $0.removeValue(forKey: id) }) else { return }
        entry.server.kill()
    }

    /// SIGKILLs ring node `index` (0-based); `restartNode` brings it back on the same port and data.
    func killNode(_ index: Int) {
        nodes.withLockedValue { $0[index] }.kill()
    }

    func restartNode(_ index: Int) async throws {
        let seeds = index == 0 ? ["--seeds", "127.0.0.1:\(nodePorts[1])"] : ["--seeds", "127.0.0.1:\(nodePorts[0])"]
        let node = try TestRing.node(
            binary: binary, index: index + 1, directory: dir.path, listen: "127.0.0.1:\(nodePorts[index])",
            flags: seeds, tag: "node\(index + 1)-restart")
        _ = try await node.port(after: TestRing.listeningMarker)
        nodes.withLockedValue { $0[index] = node }
    }

    /// SIGTERM everything and wait (SIGKILL after 10 s).
    func stop() async {
        let all =
            chats.withLockedValue { c in
                defer { c = [:] }
                return c.values.map(\.server.process)
            } + nodes.withLockedValue { $0.map(\.process) }
        _ = await Task.detached { ServerProcess.stop(all, grace: .seconds(10)) }.value
    }

    private func killAll() {
        let all = chats.withLockedValue { $0.values.map(\.server) } + nodes.withLockedValue { $0 }
        for server in all { server.kill() }
    }

    deinit { killAll() }

    // MARK: users

    /// Registers `handle` (on any server); returns its token.
    func register(_ handle: String) async throws -> String {
        let r = try await ClusterHTTP.request(
            .post, "/api/register", port: port(serverIds[0]),
            body: ["handle": handle, "password": "password-\(handle)"])
        guard let token = r.json["token"] as? String else {
            throw TestFailure("register \(handle): \(r.status) \(r.text)")
        }
        return token
    }

    /// The owner of `userId` as `port`'s server sees it.
    func route(_ userId: String, askingPort: Int? = nil) async throws -> (id: String, port: Int) {
        let r = try await ClusterHTTP.request(.get, "/api/route?user=\(userId)", port: askingPort ?? port(serverIds[0]))
        guard let id = r.json["serverId"] as? String, let server = r.json["server"] as? String,
            let p = Int(server.split(separator: ":").last ?? "")
        else { throw TestFailure("route \(userId): \(r.text)") }
        return (id, p)
    }

    /// A WebSocket to the user's owner server, once it said hello.
    func connect(_ userId: String, token: String) async throws -> (socket: TestSocket, serverId: String) {
        let owner = try await route(userId)
        let socket = TestSocket(url: "ws://127.0.0.1:\(owner.port)/ws?token=\(token)")
        let hello = try await socket.next("hello", timeout: .seconds(10))
        return (socket, hello["serverId"] as? String ?? "")
    }
}

/// HTTP/1 JSON requests to a server in another process.
enum ClusterHTTP {
    struct Result: @unchecked Sendable {
        var status: Int
        var json: [String: Any]
        var text: String
    }

    /// `rawBody`, when given, is sent as is (JSON written by hand, e.g. with escapes).
    static func request(
        _ method: HTTPRequest.Method, _ path: String, port: Int, token: String? = nil,
        body: [String: Any]? = nil, rawBody: String? = nil
    ) async throws -> Result {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        var buffer: ByteBuffer? = nil
        if let body {
            buffer = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))
            headers[.contentType] = "application/json"
        } else if let rawBody {
            buffer = ByteBuffer(string: rawBody)
            headers[.contentType] = "application/json"
        }
        let request = TestClient.Request(path, method: method, headers: headers, body: buffer)
        let response = try await TestClient.withClient(
            host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(30))
        ) {
            try await $0.execute(request)
        }
        let text = response.body.flatMap { $0.getString(at: $0.readerIndex, length: $0.readableBytes) } ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        return Result(status: response.status.code, json: json, text: text)
    }
}
