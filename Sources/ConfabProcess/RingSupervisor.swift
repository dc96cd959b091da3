import ConfabClient
import ConfabNode
import ConfabRing
import ConfabWire
import Foundation

/// The I/O behind the ring commands: launches recorded nodes, waits for their "listening" line
/// and for the ring to be normal, stops them. Keeps `ring.json` up to date after every change,
/// so a CLI interrupted half-way leaves a file that `confab ring stop` can act on.
package final class RingSupervisor: @unchecked Sendable {
    package let directory: String
    package private(set) var state: RingFile
    package let clock: ContinuousClock
    /// Progress lines (the commands print them on stderr).
    package let progress: @Sendable (String) -> Void
    /// Set once a node answered as a standalone node, so the note is printed once.
    private var notedStandalone = false

    package init(
        directory: String, state: RingFile, clock: ContinuousClock = ContinuousClock(),
        progress: @escaping @Sendable (String) -> Void
    ) {
        self.directory = directory
        self.state = state
        self.clock = clock
        self.progress = progress
    }

    package func save() throws(RingCommandError) { try state.save(to: directory) }

    package func update(_ index: Int, _ change: (inout RingFile.Node) -> Void) throws(RingCommandError) {
        state.update(index, change)
        try save()
    }

    // MARK: Launching

    /// Spawns node `index` with its recorded command line, then waits until it prints its
    /// "listening" line; records pid, id and state. On failure the node is marked failed and the
    /// error quotes the end of its log. `extraArguments` go to this launch only (not recorded).
    package func launch(_ index: Int, timeout: Duration, extraArguments: [String] = []) async throws(RingCommandError) {
        let node = try state.node(index, directory: directory)
        do {
            try FileManager.default.createDirectory(atPath: node.dataDir, withIntermediateDirectories: true)
        } catch {
            throw RingCommandError(.io, "cannot create \(node.dataDir): \(error)")
        }
        var argv = node.command + extraArguments
        if !argv.contains("--cluster-secret-file") {
            // The ring's nodes share the secret in the ring directory, created on first launch
            // (docs/security.md); rings recorded before it existed get it the same way.
            let secretPath = ClusterSecretFile.path(inRingDirectory: directory)
            do {
                try ClusterSecretFile.createIfMissing(at: secretPath)
            } catch {
                throw RingCommandError(.io, error.description)
            }
            argv += ["--cluster-secret-file", secretPath]
        }
        let banner = "--- confab ring: starting node \(index) at \(Date()): \(argv.joined(separator: " "))\n"
        let process = try ServerProcess.start(
            .init(arguments: argv, logPath: node.log, banner: banner, newSession: true, expectedArgument: node.dataDir))
        try update(index) {
            $0.pid = process.pid
            $0.state = "starting"
        }
        do {
            // "confab node <id> listening on <host>:<port> …": printed once the port is bound.
            let line = try await process.line(
                containing: " listening on ", timeout: timeout, what: "node \(index) on \(node.addressText)")
            try update(index) {
                $0.id = Self.listeningID(in: line)
                $0.state = "running"
            }
        } catch {
            if error.code == .startFailed { try update(index) { $0.state = "failed" } }
            throw error
        }
    }

    /// The id in `confab node <id> listening on <host>:<port>`, once that line is complete.
    package static func listeningID(in text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("confab node ") {
            let words = line.split(separator: " ")
            if words.count >= 5, words[3] == "listening", words[4] == "on" { return String(words[2]) }
        }
        return nil
    }

    // MARK: Waiting for the ring

    /// Polls `status()` on each of `askers` until every one of them sees every node in `expected`
    /// up and normal; returns the last status of the first asker and its address. Fails fast when an asker's
    /// process exits, and with a pointer to the logs after `timeout`. A poll (every 200 ms) because
    /// gossip convergence is visible only in each node's status answer: there is no event to wait on.
    @discardableResult
    package func waitUntilNormal(askers: [Int], expected: [Int], timeout: Duration) async throws(RingCommandError) -> (
        status: RingStatus, answeredBy: String
    ) {
        let askerNodes = try askers.map { i throws(RingCommandError) in try state.node(i, directory: directory) }
        let expectedNodes = try expected.map { i throws(RingCommandError) in try state.node(i, directory: directory) }
        var clients: [Int: ConfabClient] = [:]
        for node in askerNodes { clients[node.index] = Self.statusClient(node.address) }
        defer {
            let all = Array(clients.values)
            Task { for c in all { await c.shutdown() } }
        }
        let deadline = clock.now.advanced(by: timeout)
        var reasons: [Int: String] = [:]
        var statuses: [Int: RingStatus] = [:]
        var lastShown = ""
        var lastShownAt = clock.now
        while true {
            for node in askerNodes {
                do {
                    let status = try await clients[node.index]!.status()
                    statuses[node.index] = status
                    switch RingReadiness.judge(status, expected: expectedNodes) {
                    case .ready:
                        reasons[node.index] = nil
                    case .standalone:
                        reasons[node.index] = nil
                        noteStandalone()
                    case .waiting(let why):
                        reasons[node.index] = "\(node.addressText) \(why)"
                    }
                } catch {
                    guard node.isAlive else {
                        throw RingCommandError(
                            .startFailed,
                            """
                            node \(node.index) (pid \(node.pid.map(String.init) ?? "?")) exited; the end of \(node.log):
                            \(ServerProcess.tail(of: node.log))
                            """)
                    }
                    reasons[node.index] = "\(node.addressText) does not answer yet (\(error))"
                }
            }
            if reasons.isEmpty, let first = askerNodes.first, var status = statuses[first.index] {
                Self.fillAddress(&status, answeredBy: first)
                return (status, first.addressText)
            }
            let summary = reasons.keys.sorted().compactMap { reasons[$0] }.first ?? ""
            guard clock.now < deadline else {
                let logs = askerNodes.map(\.log).joined(separator: ", ")
                throw RingCommandError(
                    .timeout,
                    """
                    the ring was not normal within \(Self.seconds(timeout)): \(summary). \
                    Look at the node logs (\(logs)), then stop the nodes with `confab ring stop --dir \(directory)`.
                    """)
            }
            // Say what is still awaited when it changes, at most every 2 s.
            if summary != lastShown, clock.now - lastShownAt > .seconds(2) {
                progress("  still waiting: \(summary)")
                lastShown = summary
                lastShownAt = clock.now
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    private func noteStandalone() {
        guard !notedStandalone, state.nodes.count > 1 else { return }
        notedStandalone = true
        progress(
            "note: the nodes answer as standalone nodes (this build's node does not join a ring yet); "
                + "each one holds only what is written through it")
    }

    /// A client that talks to one node only, with short timeouts (for polling).
    package static func statusClient(
        _ address: NodeAddress, timeout: Duration = .seconds(3),
        credentials: ClusterCredentials? = nil
    ) -> ConfabClient {
        var config = ConfabClient.Configuration(nodes: [address])
        config.credentials = credentials
        config.connectTimeout = .seconds(1)
        config.requestTimeout = timeout
        config.maxAttempts = 1
        config.clientName = "confab-ring"
        return ConfabClient(configuration: config)
    }

    /// A lone node reports itself without an address; show the one we asked.
    package static func fillAddress(_ status: inout RingStatus, answeredBy node: RingFile.Node) {
        for i in status.nodes.indices where status.nodes[i].host.isEmpty {
            status.nodes[i].host = node.host
            status.nodes[i].port = UInt16(clamping: node.port)
        }
    }

    // MARK: Stopping

    /// SIGTERM to every running node of `indices`, then waits up to `timeout`; whoever is still
    /// running then gets SIGKILL (said on `progress`). Returns the indices that needed SIGKILL.
    @discardableResult
    package func stop(_ indices: [Int], timeout: Duration) throws(RingCommandError) -> [Int] {
        let running = state.nodes.filter { indices.contains($0.index) && $0.isAlive }
        for node in running { node.process?.send(SIGTERM) }
        let stillRunning = Set(ServerProcess.waitForExit(running.compactMap(\.process), timeout: timeout).map(\.pid))
        let stubborn = running.filter { stillRunning.contains($0.pid ?? 0) }
        for node in stubborn {
            progress(
                "node \(node.index) (pid \(node.pid!)) did not exit within \(Self.seconds(timeout)) of SIGTERM; sending SIGKILL"
            )
            node.process?.send(SIGKILL)
        }
        let surviving = Set(ServerProcess.waitForExit(stubborn.compactMap(\.process), timeout: .seconds(5)).map(\.pid))
        let survivors = stubborn.filter { surviving.contains($0.pid ?? 0) }
        let gone = { (node: RingFile.Node) in !survivors.contains { $0.index == node.index } }
        for node in running where gone(node) {
            let killed = stubborn.contains { $0.index == node.index }
            state.update(node.index) { $0.state = killed ? "killed" : "stopped" }
            ServerProcess.note(
                killed ? "killed with SIGKILL after SIGTERM timed out" : "stopped with SIGTERM",
                inLog: node.log)
        }
        // Recorded as running but found dead before the signal: it exited (or was killed) on its own.
        for node in state.nodes
        where indices.contains(node.index) && !running.contains(where: { $0.index == node.index })
            && (node.state == "running" || node.state == "starting")
        {
            state.update(node.index) { $0.state = "exited" }
        }
        try save()
        if let still = survivors.first {
            throw RingCommandError(
                .timeout,
                "node \(still.index) (pid \(still.pid!)) survived SIGKILL; check it with `ps -p \(still.pid!)`")
        }
        return stubborn.map(\.index)
    }

    package static func seconds(_ d: Duration) -> String {
        let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s)
    }
}
