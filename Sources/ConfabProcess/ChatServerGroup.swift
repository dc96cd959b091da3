import ConfabNode
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The chat server processes `confab up` runs over a local ring: their command lines, logs and
/// pids (recorded in `<dir>/chat-servers.json`, so a later `up` can stop ones a hard-killed `up`
/// left behind), started and watched as `ServerProcess`es.
package struct ChatServerGroup {
    package struct Server: Codable, Hashable, Sendable {
        package var index: Int
        package var port: Int
        package var pid: Int32
        package var log: String
        package var url: String?

        /// The process to watch or signal; "chat" in its command line tells it apart from a
        /// recycled pid.
        package var process: ServerProcess {
            ServerProcess(pid: pid, logPath: log, expectedArgument: "chat")
        }
    }

    package let directory: String
    package let timeout: Duration
    private let progress: @Sendable (String) -> Void
    package private(set) var servers: [Server] = []

    package init(directory: String, timeout: Duration, progress: @escaping @Sendable (String) -> Void) {
        self.directory = directory
        self.timeout = timeout
        self.progress = progress
    }

    private var recordPath: String { "\(directory)/chat-servers.json" }
    package var secretPath: String { "\(directory)/chat-secret" }

    /// Stops chat servers recorded by an earlier `up` that are still running.
    package mutating func stopStale() {
        guard let data = FileManager.default.contents(atPath: recordPath),
            let stale = try? JSONDecoder().decode([Server].self, from: data)
        else { return }
        let alive = stale.filter(\.process.isAlive)
        if !alive.isEmpty {
            progress("stopping \(alive.count) chat server(s) left running by an earlier `confab up`…")
            servers = alive
            stopAll()
        }
        unlink(recordPath)
    }

    /// Launches `count` chat servers against the ring in `ringDirectory` and waits until each
    /// prints its URL. Returns the URLs.
    package mutating func start(count: Int, ports: [Int], ringDirectory: String, logFormat: String = "text")
        throws(RingCommandError) -> [String]
    {
        let secret = try ensureSecret()
        let state = try RingFile.require(in: ringDirectory)
        let nodes = state.nodes.map(\.addressText).joined(separator: ",")
        let executable = ServerProcess.confabExecutable()
        for i in 1...count {
            let chatDir = "\(directory)/chat\(i)"
            try? FileManager.default.createDirectory(atPath: chatDir, withIntermediateDirectories: true)
            let log = "\(chatDir)/chat.log"
            var command = [
                executable, "chat", "serve", "--host", "127.0.0.1", "--port", String(ports[i - 1]),
                "--nodes", nodes, "--server-id", "chat\(i)", "--secret-file", secret, "--log-format", logFormat,
            ]
            // The servers share this machine with the ring's nodes: each gets its share of the cores.
            if let loops = CoreShare.eventLoopThreads(nodes: count + state.nodes.count) {
                command += ["--event-loop-threads", String(loops)]
            }
            progress("starting chat server \(i) of \(count) on 127.0.0.1:\(ports[i - 1])…")
            let banner = "--- confab up: starting chat server \(i) at \(Date()): \(command.joined(separator: " "))\n"
            let process = try ServerProcess.start(
                .init(arguments: command, logPath: log, banner: banner, newSession: true, expectedArgument: "chat"))
            servers.append(Server(index: i, port: ports[i - 1], pid: process.pid, log: log, url: nil))
            try record()
            let line = try process.waitForLine(
                containing: "listening on http://", timeout: timeout, what: "chat server \(i)")
            servers[i - 1].url = Self.listeningURL(in: line)
            try record()
        }
        return servers.compactMap(\.url)
    }

    /// Waits until every chat server answers `/ready` and sees all the others in its live set,
    /// so a client that connects at once is homed where it stays (before this, `up` said it was
    /// up while the servers had not yet seen each other, and clients were re-homed with 4021 a
    /// few seconds later). Prints progress; on timeout names each server that is not ready.
    ///
    /// This is a poll (every 200 ms) because readiness is only visible as an HTTP answer: there
    /// is no event to wait on. A server that exits ends the wait at once.
    package func awaitReady(timeout: Duration) throws(RingCommandError) {
        let ids = servers.map { "chat\($0.index)" }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var lastReport = ContinuousClock.now
        progress(
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
            guard ContinuousClock.now < deadline else {
                throw RingCommandError(
                    .timeout, "the chat servers were not ready in time:\n  " + pending.joined(separator: "\n  "))
            }
            if ContinuousClock.now - lastReport >= .seconds(3) {
                lastReport = ContinuousClock.now
                progress("still waiting: " + pending.joined(separator: "; "))
            }
            let next = min(deadline, ContinuousClock.now + .milliseconds(200))
            if let dead = exited(waitingUntil: next) {
                throw RingCommandError(
                    .startFailed,
                    """
                    chat server \(dead.index) (pid \(dead.pid)) exited before it was ready; the end of \(dead.log):
                    \(ServerProcess.tail(of: dead.log))
                    """)
            }
        }
    }

    /// What keeps one server from being ready (empty when it is): its `/ready` answer, and
    /// whether its live set holds every server `up` started.
    package static func notReady(index: Int, url: String, expected: [String]) -> [String] {
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

    /// Blocks until a chat server exits (returns it) or `wake` becomes readable (returns nil):
    /// `up`'s wait for Ctrl-C.
    package func waitForExit(orReadable wake: Int32) -> Server? {
        while true {
            let gone = ServerProcess.waitForAnyExit(servers.map(\.process), orReadable: wake)
            if let pid = gone.first?.pid { return servers.first { $0.pid == pid } }
            var ready = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, 0) > 0 { return nil }
        }
    }

    /// The first server found exited while waiting until `deadline`, if any.
    private func exited(waitingUntil deadline: ContinuousClock.Instant) -> Server? {
        let gone = ServerProcess.waitForAnyExit(servers.map(\.process), until: deadline)
        guard let pid = gone.first?.pid else { return nil }
        return servers.first { $0.pid == pid }
    }

    /// SIGTERM to every chat server, SIGKILL to those still running after 10 s.
    package func stopAll() {
        ServerProcess.stop(servers.map(\.process), grace: .seconds(10))
        unlink(recordPath)
    }

    private func record() throws(RingCommandError) {
        do {
            let data = try JSONEncoder().encode(servers)
            try data.write(to: URL(fileURLWithPath: recordPath), options: .atomic)
        } catch {
            throw RingCommandError(.io, "cannot write \(recordPath): \(error)")
        }
    }

    /// The deployment's token-signing secret, created once (random, born 0600: `PrivateFile`) so
    /// tokens stay valid across restarts and every chat server accepts every other's tokens.
    private func ensureSecret() throws(RingCommandError) -> String {
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        do {
            try PrivateFile.createIfMissing(at: secretPath, contents: Array((hex + "\n").utf8))
        } catch {
            throw RingCommandError(.io, "cannot create \(secretPath): \(error)")
        }
        return secretPath
    }

    /// The URL in a "listening on http://host:port" line.
    package static func listeningURL(in text: String) -> String? {
        guard let range = text.range(of: "listening on http://") else { return nil }
        let rest = text[range.lowerBound...].dropFirst("listening on ".count)
        let url = rest.prefix { !$0.isWhitespace && $0 != "\"" && $0 != "," }
        return url.isEmpty ? nil : String(url)
    }
}
