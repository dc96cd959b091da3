import ConfabChat
import ConfabClient
import ConfabRing
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore

/// A deployment of real processes on 127.0.0.1: a 3-node RF-3 ring of `confab node` and chat servers
/// (`confab chat serve`, short heartbeat TTL so failover tests stay quick), sharing one secret file.
final class ChatClusterProcesses: Sendable {
    let dir: ChatTempDirectory
    let binary: String
    /// The first node's port (every chat server is given all three).
    let nodePort: Int
    let nodePorts: [Int]
    private let nodeProcesses: NIOLockedValueBox<[Process]>
    private var nodes: [Process] { nodeProcesses.withLockedValue { $0 } }
    private let chats: NIOLockedValueBox<[String: (process: Process, port: Int)]>
    static let heartbeatTTL = 3

    private init(dir: ChatTempDirectory, binary: String, nodes: [Process], nodePorts: [Int]) {
        self.dir = dir
        self.binary = binary
        self.nodeProcesses = NIOLockedValueBox(nodes)
        self.nodePorts = nodePorts
        self.nodePort = nodePorts[0]
        self.chats = NIOLockedValueBox([:])
    }

    /// `serverArguments` go to every `confab chat serve` (e.g. a small send budget).
    static func start(servers: [String], serverArguments: [String] = []) async throws -> ChatClusterProcesses {
        guard let binary = confabBinary() else {
            throw TestFailure("confab executable not found next to the test bundle")
        }
        let dir = ChatTempDirectory("confab-chat-cluster")
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        _ = FileManager.default.createFile(
            atPath: "\(dir.path)/chat-secret", contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        // A fresh, empty ring: nothing to stream, so nodes join without bootstrapping.
        let fast = nodeFlags
        var processes: [Process] = []
        var ports: [Int] = []
        do {
            for i in 1...3 {
                let seeds = ports.isEmpty ? [] : ["--seeds", "127.0.0.1:\(ports[0])"]
                let (node, port) = try await launch(
                    binary,
                    ["node", "--data-dir", "\(dir.path)/node\(i)", "--listen", "127.0.0.1:0"]
                        + fast + seeds,
                    name: "node\(i)", dir: dir.path, waitFor: "listening on 127.0.0.1:")
                processes.append(node)
                ports.append(port)
            }
            try await waitForNormalRing(ports)
        } catch {
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            throw error
        }
        let cluster = ChatClusterProcesses(dir: dir, binary: binary, nodes: processes, nodePorts: ports)
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
        let (process, port) = try await Self.launch(
            binary,
            [
                "chat", "serve", "--port", "0", "--nodes", nodePorts.map { "127.0.0.1:\($0)" }.joined(separator: ","),
                "--server-id", id,
                "--secret-file", "\(dir.path)/chat-secret", "--password-rounds", "1000", "--heartbeat-ttl",
                "\(Self.heartbeatTTL)",
                // Tests sign up to 100 users from 127.0.0.1 at once: lift the per-address limit.
                "--login-rate", "1000", "--login-burst", "1000",
                "--log-level", "warning",
            ] + arguments, name: id, dir: dir.path, waitFor: "confab chat \(id) listening on http://127.0.0.1:")
        chats.withLockedValue { $0[id] = (process, port) }
    }

    /// Waits until the first node sees all three as NORMAL and up.
    private static func waitForNormalRing(_ ports: [Int]) async throws {
        var config = ConfabClient.Configuration(nodes: [NodeAddress(host: "127.0.0.1", port: ports[0])])
        config.schema = ChatSchema.registry
        config.requestTimeout = .seconds(2)
        let client = ConfabClient(configuration: config)
        defer { Task { await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            if let status = try? await client.status(),
                status.nodes.count == ports.count, status.nodes.allSatisfy({ $0.state == "normal" && $0.isUp })
            {
                return
            }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("the 3-node ring did not become normal within 30 s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Starts a process and waits for the line announcing its port.
    private static func launch(
        _ binary: String, _ arguments: [String], name: String, dir: String, waitFor marker: String
    )
        async throws -> (Process, Int)
    {
        let out = "\(dir)/\(name).out"
        let err = "\(dir)/\(name).err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, process.isRunning {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let r = text.range(of: marker), let port = Int(text[r.upperBound...].prefix { $0.isNumber }) {
                return (process, port)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        throw TestFailure(
            "\(name) did not start; stderr: \((try? String(contentsOfFile: err, encoding: .utf8))?.suffix(2000) ?? "")")
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
        kill(entry.process.processIdentifier, SIGKILL)
        entry.process.waitUntilExit()
    }

    /// SIGKILLs ring node `index` (0-based); `restartNode` brings it back on the same port and data.
    func killNode(_ index: Int) {
        let p = nodes[index]
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func restartNode(_ index: Int) async throws {
        let seeds = index == 0 ? ["--seeds", "127.0.0.1:\(nodePorts[1])"] : ["--seeds", "127.0.0.1:\(nodePorts[0])"]
        let (node, _) = try await Self.launch(
            binary,
            ["node", "--data-dir", "\(dir.path)/node\(index + 1)", "--listen", "127.0.0.1:\(nodePorts[index])"]
                + Self.nodeFlags + seeds,
            name: "node\(index + 1)-restart", dir: dir.path, waitFor: "listening on 127.0.0.1:")
        nodeProcesses.withLockedValue { $0[index] = node }
    }

    static let nodeFlags = [
        "--rf", "3", "--vnodes", "16", "--gossip-interval-ms", "200", "--write-timeout-ms", "2000",
        "--auto-bootstrap", "false", "--log-level", "warning", "--insecure-no-cluster-secret",
    ]

    /// SIGTERM everything and wait (SIGKILL after 10 s).
    func stop() async {
        let all =
            chats.withLockedValue { c in
                defer { c = [:] }
                return Array(c.values.map(\.process))
            } + nodes
        for p in all where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(10)
        while all.contains(where: \.isRunning), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        killAll(all)
    }

    private func killAll(_ list: [Process]? = nil) {
        let all = list ?? (chats.withLockedValue { Array($0.values.map(\.process)) } + nodes)
        for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
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
