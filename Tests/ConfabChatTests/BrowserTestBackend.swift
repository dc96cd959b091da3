import ConfabProcess
import Foundation

/// What the browser test talks to: three real `confab node` processes (RF 3) and one or more
/// `confab chat serve` processes over them, started by ConfabProcess's launcher (`TestRing`,
/// `TestServer`) in a temp directory of their own. Everything is SIGKILLed on `stop()` (or
/// deinit) so a failing test leaves nothing behind.
final class BrowserTestBackend: @unchecked Sendable {
    let directory: String
    private(set) var servers: [String: TestServer] = [:]
    private(set) var nodePorts: [Int] = []
    private(set) var chatURLs: [String] = []

    static func confabBinary() -> String? { confabExecutablePath() }

    init() {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("confab-browser-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Starts the ring, waits until every node sees three normal members, then starts
    /// `chatServers` chat servers over it and returns their URLs.
    func start(binary: String, chatServers: Int = 1) async throws -> [String] {
        let secret = "\(directory)/chat-secret"
        let ring = try await TestRing.start(binary: binary, directory: directory)
        for node in ring.nodes { servers[node.tag] = node }
        nodePorts = ring.ports
        let nodes = ring.ports.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        var urls: [String] = []
        for i in 1...chatServers {
            let tag = "chat\(i == 1 ? "" : String(i))"
            let chat = try TestServer(
                binary: binary,
                arguments: [
                    "chat", "serve", "--host", "127.0.0.1", "--port", "0", "--nodes", nodes,
                    "--server-id", "web\(i)", "--secret-file", secret,
                    "--password-rounds", "1000", "--log-level", "warning",
                ], logDir: directory, tag: tag)
            servers[tag] = chat
            let port = try await chat.port(after: "listening on http://127.0.0.1:")
            urls.append("http://127.0.0.1:\(port)")
        }
        chatURLs = urls
        return urls
    }

    /// The end of a server's log ("node1", "chat", "chat2"…).
    func log(_ tag: String) -> String { servers[tag]?.logTail() ?? "" }

    func stop() {
        for server in servers.values { server.kill() }
        servers.removeAll()
        if ProcessInfo.processInfo.environment["CONFAB_KEEP_LOGS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    deinit { stop() }
}
