import ConfabProcess
import Foundation

/// The chat server processes `confab up` runs: their command lines, logs, pids (recorded in
/// `<dir>/chat-servers.json` so a later `up` can stop ones a hard-killed `up` left behind).
struct UpChatServers {
    struct Server: Codable, Hashable {
        var index: Int
        var port: Int
        var pid: Int32
        var log: String
        var url: String?
    }

    let directory: String
    let timeout: Duration
    private(set) var servers: [Server] = []

    init(directory: String, timeout: Duration) {
        self.directory = directory
        self.timeout = timeout
    }

    private var recordPath: String { "\(directory)/chat-servers.json" }
    var secretPath: String { "\(directory)/chat-secret" }

    /// Stops chat servers recorded by an earlier `up` that are still running.
    mutating func stopStale() throws {
        guard let data = FileManager.default.contents(atPath: recordPath),
            let stale = try? JSONDecoder().decode([Server].self, from: data)
        else { return }
        let alive = stale.filter { RingProcessLauncher.isAlive(pid: $0.pid, expectedArgument: "chat") }
        if !alive.isEmpty {
            RingCommand.progress("stopping \(alive.count) chat server(s) left running by an earlier `confab up`…")
            servers = alive
            stopAll()
        }
        unlink(recordPath)
    }

    /// Launches `count` chat servers against the ring in `ringDirectory` and waits until each
    /// prints its URL. Returns the URLs.
    mutating func start(count: Int, ports: [Int], ringDirectory: String, logFormat: String = "text") throws -> [String]
    {
        let secret = try ensureSecret()
        let state = try RingFile.require(in: ringDirectory)
        let nodes = state.nodes.map(\.addressText).joined(separator: ",")
        let executable = RingProcessLauncher.confabExecutable()
        for i in 1...count {
            let chatDir = "\(directory)/chat\(i)"
            try? FileManager.default.createDirectory(atPath: chatDir, withIntermediateDirectories: true)
            let log = "\(chatDir)/chat.log"
            let command = [
                executable, "chat", "serve", "--host", "127.0.0.1", "--port", String(ports[i - 1]),
                "--nodes", nodes, "--server-id", "chat\(i)", "--secret-file", secret, "--log-format", logFormat,
            ]
            RingCommand.progress("starting chat server \(i) of \(count) on 127.0.0.1:\(ports[i - 1])…")
            let logStart = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
            let banner = "--- confab up: starting chat server \(i) at \(Date()): \(command.joined(separator: " "))\n"
            let pid = try RingProcessLauncher.spawnDetached(command, logPath: log, banner: banner)
            servers.append(Server(index: i, port: ports[i - 1], pid: pid, log: log, url: nil))
            try record()
            servers[i - 1].url = try awaitURL(pid: pid, log: log, from: logStart + banner.utf8.count, index: i)
            try record()
        }
        return servers.compactMap(\.url)
    }

    /// Waits until every chat server answers `/ready` and sees all the others in its live set,
    /// so a client that connects at once is homed where it stays (before this, `up` said it was
    /// up while the servers had not yet seen each other, and clients were re-homed with 4021 a
    /// few seconds later). Prints progress; on timeout names each server that is not ready.
    func awaitReady(timeout: Duration) throws {
        let ids = servers.map { "chat\($0.index)" }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var lastReport = ContinuousClock.now
        RingCommand.progress(
            "waiting for \(servers.count) chat server\(servers.count == 1 ? "" : "s") to be ready (heartbeating and seeing each other)…"
        )
        while true {
            var pending: [String] = []
            for server in servers {
                guard let url = server.url else {
                    pending.append("chat server \(server.index): no URL yet")
                    continue
                }
                pending += Self.notReady(index: server.index, url: url, expected: ids)
            }
            if pending.isEmpty { return }
            if let dead = servers.first(where: { !RingProcessLauncher.isAlive(pid: $0.pid, expectedArgument: "chat") })
            {
                throw RingCommandError(
                    .startFailed,
                    """
                    chat server \(dead.index) (pid \(dead.pid)) exited before it was ready; the end of \(dead.log):
                    \(RingProcessLauncher.tail(of: dead.log))
                    """)
            }
            guard ContinuousClock.now < deadline else {
                throw RingCommandError(
                    .timeout, "the chat servers were not ready in time:\n  " + pending.joined(separator: "\n  "))
            }
            if ContinuousClock.now - lastReport >= .seconds(3) {
                lastReport = ContinuousClock.now
                RingCommand.progress("still waiting: " + pending.joined(separator: "; "))
            }
            usleep(200_000)
        }
    }

    /// What keeps one server from being ready (empty when it is): its `/ready` answer, and
    /// whether its live set holds every server `up` started.
    static func notReady(index: Int, url: String, expected: [String]) -> [String] {
        guard let answer = HTTPProbe.get(url + "/ready") else {
            return ["chat server \(index): /ready does not answer"]
        }
        struct Ready: Decodable {
            var ready: Bool
            var servers: [String]
            var reasons: [String]
        }
        guard let ready = try? JSONDecoder().decode(Ready.self, from: answer.body) else {
            return ["chat server \(index): /ready answered \(answer.status) without a readiness body"]
        }
        if !ready.ready { return ["chat server \(index): " + (ready.reasons.first ?? "not ready")] }
        let missing = expected.filter { !ready.servers.contains($0) }
        return missing.isEmpty ? [] : ["chat server \(index) does not see \(missing.joined(separator: ", ")) yet"]
    }

    /// Blocks until a stop signal arrives or a chat server exits; says which.
    func wait(until stop: UpStopSignal) -> String {
        while true {
            if let sig = stop.signal {
                return "received \(sig == SIGINT ? "SIGINT" : "SIGTERM"); stopping the chat servers…"
            }
            if let dead = servers.first(where: { !RingProcessLauncher.isAlive(pid: $0.pid, expectedArgument: "chat") })
            {
                return """
                    chat server \(dead.index) (pid \(dead.pid)) exited; stopping everything. The end of \(dead.log):
                    \(RingProcessLauncher.tail(of: dead.log))
                    """
            }
            usleep(200_000)
        }
    }

    /// SIGTERM to every chat server, SIGKILL to those still running after 10 s.
    func stopAll() {
        for s in servers { RingProcessLauncher.send(SIGTERM, to: s.pid) }
        let deadline = Date().addingTimeInterval(10)
        var alive = servers
        while !alive.isEmpty, Date() < deadline {
            usleep(50_000)
            alive = alive.filter { RingProcessLauncher.isAlive(pid: $0.pid, expectedArgument: "chat") }
        }
        for s in alive { RingProcessLauncher.send(SIGKILL, to: s.pid) }
        unlink(recordPath)
    }

    private func record() throws {
        let data = try JSONEncoder().encode(servers)
        guard FileManager.default.createFile(atPath: recordPath, contents: data) else {
            throw RingCommandError(.io, "cannot write \(recordPath)")
        }
    }

    /// The deployment's token-signing secret, created once (random, mode 0600) so tokens stay
    /// valid across restarts and every chat server accepts every other's tokens.
    private func ensureSecret() throws -> String {
        if FileManager.default.fileExists(atPath: secretPath) { return secretPath }
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        guard
            FileManager.default.createFile(
                atPath: secretPath, contents: Data(hex.utf8),
                attributes: [.posixPermissions: 0o600])
        else {
            throw RingCommandError(.io, "cannot write \(secretPath)")
        }
        return secretPath
    }

    /// Waits for the server's "listening on http://…" log line and returns the URL.
    private func awaitURL(pid: pid_t, log: String, from offset: Int, index: Int) throws -> String {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let data = FileManager.default.contents(atPath: log), data.count > offset,
                let text = String(data: data.suffix(from: offset), encoding: .utf8),
                let url = Self.listeningURL(in: text)
            {
                return url
            }
            guard RingProcessLauncher.isAlive(pid: pid, expectedArgument: "chat") else {
                throw RingCommandError(
                    .startFailed,
                    """
                    chat server \(index) (pid \(pid)) exited while starting; the end of \(log):
                    \(RingProcessLauncher.tail(of: log))
                    """)
            }
            guard ContinuousClock.now < deadline else {
                throw RingCommandError(.timeout, "chat server \(index) did not start listening in time; see \(log)")
            }
            usleep(50_000)
        }
    }

    /// The URL in a "listening on http://host:port" line.
    static func listeningURL(in text: String) -> String? {
        guard let range = text.range(of: "listening on http://") else { return nil }
        let rest = text[range.lowerBound...].dropFirst("listening on ".count)
        let url = rest.prefix { !$0.isWhitespace }
        return url.isEmpty ? nil : String(url)
    }
}
