import ArgumentParser
import ConfabNode
import ConfabProcess
import ConfabWire
import Foundation

/// `confab ring start`: launches N `confab node` processes and returns once the ring is normal.
struct RingStartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a ring of node processes on 127.0.0.1; returns when every node is up and normal.",
        discussion: """
            Nodes start one at a time (node 1 is every node's seed); each one is awaited until it \
            listens and sees the nodes before it as normal, then the whole ring is awaited and its \
            status printed. A node whose process exits while starting (it refuses to open, e.g. its \
            data directory is corrupt or unreadable) is left down: the others start, the status of \
            the healthy nodes is printed, and the command fails naming that node and quoting its \
            log, with the healthy nodes left running. Any other failure (a node that never \
            listens, a ring that is not normal in time, or every node refusing) stops the nodes \
            started so far. A directory holding a stopped ring (after \
            `confab ring stop`) is started again with its data and recorded settings. A directory \
            whose ring is running is refused.
            """)

    @Option(help: ArgumentHelp("Number of nodes (default 3; for a stopped ring, the recorded number).", valueName: "n"))
    var nodes: Int?

    @OptionGroup var ring: RingDirectoryOptions

    @Option(
        name: .customLong("rf"),
        help: ArgumentHelp("Replication factor (default 3, or --nodes when fewer).", valueName: "n"))
    var replicationFactor: Int?

    @Option(help: ArgumentHelp("Vnode tokens per node.", valueName: "n"))
    var vnodes: Int = 16

    @Option(
        name: .customLong("base-port"),
        help: ArgumentHelp(
            "Listen on base-port, base-port+1, …; default: free ports the system picks.", valueName: "port"))
    var basePort: Int?

    @Option(
        help: ArgumentHelp(
            "WAL sync mode for every node: batch, group or periodic[:MS] (default: the node's, group).",
            valueName: "mode"))
    var sync: String?

    @Option(
        name: .customLong("event-loop-threads"),
        help: ArgumentHelp(
            "Event-loop threads per node (default: this machine's cores split among the nodes, at least 1; a lone node gets one per core).",
            valueName: "n"))
    var eventLoopThreads: Int?

    @Option(
        name: .customLong("node-config"),
        help: ArgumentHelp(
            "A node config file (key = value lines, as `confab node --config` reads) given to every node of a new ring; the ring's own settings (data_dir, listen, seeds, rf, vnodes, metrics port, and --sync and --event-loop-threads when given) win over its keys.",
            valueName: "file"))
    var nodeConfig: String?

    @Option(help: ArgumentHelp("Seconds to wait for the whole ring to be up and normal.", valueName: "seconds"))
    var timeout: Double = 60

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp("Log format of a new ring's nodes: text (default) or json.", valueName: "format"))
    var logFormat: String = "text"

    func validate() throws {
        if let nodes, !(1...64).contains(nodes) { throw ValidationError("--nodes must be between 1 and 64") }
        let count = nodes ?? 3
        if let rf = replicationFactor {
            guard (1...16).contains(rf) else { throw ValidationError("--rf must be between 1 and 16") }
            guard rf <= count else {
                throw ValidationError(
                    "--rf \(rf) needs at least \(rf) nodes (--nodes is \(count)); QUORUM writes could never succeed")
            }
        }
        guard (1...256).contains(vnodes) else { throw ValidationError("--vnodes must be between 1 and 256") }
        if let basePort, !(1...(65536 - count)).contains(basePort) {
            throw ValidationError("--base-port \(basePort) leaves no room for \(count) ports below 65536")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let eventLoopThreads, !(1...1024).contains(eventLoopThreads) {
            throw ValidationError("--event-loop-threads must be between 1 and 1024")
        }
        _ = try LogFormat.parse(logFormat)
        if let nodeConfig {
            // Read now, so a typo fails here with the file's line instead of in every node's log.
            do {
                _ = try NodeConfiguration.load(file: nodeConfig)
            } catch {
                throw ValidationError("--node-config: \(error.message)")
            }
        }
    }

    func run() throws {
        let directory = ring.path
        let (status, answeredBy, refused, total) = try RingCommand.guarded("start") {
            () throws -> (RingStatus, String, [RefusedNode], Int) in
            let lock = try RingDirectoryLock(directory: directory, create: true)
            let (state, isNew) = try plan(directory: directory)
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            try supervisor.save()
            let timeout = Duration.milliseconds(Int(self.timeout * 1000))
            let status: (RingStatus, String, [RefusedNode])
            do {
                status = try runBlocking {
                    try await Self.start(
                        supervisor, timeout: timeout, isNew: isNew, mayMovePorts: isNew && basePort == nil)
                }
            } catch {
                // A new ring that never came up is forgotten (its logs stay), so that the next
                // `ring start` plans afresh instead of restarting a broken command line.
                if isNew { unlink(RingFile.path(in: directory)) }
                throw error
            }
            let s = supervisor.state
            let up = s.nodes.count - status.2.count
            RingCommand.progress(
                "ring of \(s.nodes.count) node\(s.nodes.count == 1 ? "" : "s") "
                    + (status.2.isEmpty ? "" : "(\(up) up, \(status.2.count) refused to start) ")
                    + "running in \(directory) "
                    + "(rf \(s.replicationFactor)); logs in \(directory)/nodeN/node.log; stop it with `confab ring stop\(ring.dir == nil ? "" : " --dir \(directory)")`"
            )
            _ = consume lock
            return (status.0, status.1, status.2, s.nodes.count)
        }
        print(RingStatusTable.render(status, answeredBy: answeredBy))
        guard refused.isEmpty else {
            let nodes = refused.map { "node \($0.index)" }.joined(separator: ", ")
            RingCommand.progress(
                "confab ring start: "
                    + RingCommandError(
                        .startFailed,
                        """
                        \(refused.count) of \(total) nodes refused to start (\(nodes)) and are down; the other \(total - refused.count) \
                        are running. Fix the cause, then `confab ring restart N\(ring.dir == nil ? "" : " --dir \(ring.path)")`.
                        \(refused.map(\.reason).joined(separator: "\n"))
                        """
                    ).description)
            throw ExitCode.failure
        }
    }

    /// A node whose process exited while starting, and why (the end of its log).
    struct RefusedNode: Sendable {
        let index: Int
        let reason: String
    }

    /// The ring to start: the stopped one recorded in `directory`, or a new one.
    private func plan(directory: String) throws -> (state: RingFile, isNew: Bool) {
        if let existing = try RingFile.load(from: directory) {
            let running = existing.runningNodes()
            if !running.isEmpty {
                let list = running.map { "node \($0.index) pid \($0.pid!)" }.joined(separator: ", ")
                throw RingCommandError(
                    .alreadyRunning,
                    """
                    a ring is already running in \(directory) (\(list)); stop it with \
                    `confab ring stop --dir \(directory)`, or pass another --dir for a second ring
                    """)
            }
            if nodeConfig != nil {
                throw RingCommandError(
                    .alreadyRunning,
                    """
                    \(directory) holds a stopped ring, which starts again with its recorded settings; \
                    --node-config applies to a new ring only: remove \(directory) (or pass another --dir) for one
                    """)
            }
            if let nodes, nodes != existing.nodes.count {
                throw RingCommandError(
                    .alreadyRunning,
                    """
                    \(directory) holds a stopped \(existing.nodes.count)-node ring; `confab ring start --dir \(directory)` \
                    starts it again with its data, or remove \(directory) (or pass another --dir) for a new \(nodes)-node ring
                    """)
            }
            RingCommand.progress(
                "\(directory) holds a stopped \(existing.nodes.count)-node ring; starting it again with its data "
                    + "and recorded settings (remove \(directory) for a new ring)")
            return (existing, false)
        }
        let count = nodes ?? 3
        let rf = replicationFactor ?? min(3, count)
        let host = "127.0.0.1"
        var ports: [Int] = []
        for i in 0..<count {
            if let basePort {
                let port = basePort + i
                guard LocalPorts.isFree(port, host: host) else {
                    throw RingCommandError(
                        .startFailed,
                        """
                        port \(port) (node \(i + 1)) is in use; pick another --base-port, or leave it out to use free ports
                        """)
                }
                ports.append(port)
            } else {
                var port = try LocalPorts.free(host: host)
                while ports.contains(port) { port = try LocalPorts.free(host: host) }
                ports.append(port)
            }
        }
        // Every node gets an operations port (/metrics, /health, /ready), recorded in ring.json.
        var metricsPorts: [Int] = []
        for _ in 0..<count {
            var port = try LocalPorts.free(host: host)
            while ports.contains(port) || metricsPorts.contains(port) {
                port = try LocalPorts.free(host: host)
            }
            metricsPorts.append(port)
        }
        let executable = ServerProcess.confabExecutable()
        let seed = "\(host):\(ports[0])"
        let loops = eventLoopThreads ?? CoreShare.eventLoopThreads(nodes: count)
        let nodes = (1...count).map { index in
            let nodeDir = "\(directory)/node\(index)"
            var command = [
                executable, "node", "--data-dir", "\(nodeDir)/data", "--listen", "\(host):\(ports[index - 1])",
                "--seeds", seed, "--rf", String(rf), "--vnodes", String(vnodes),
                "--metrics-port", String(metricsPorts[index - 1]),
            ]
            if let sync { command += ["--sync", sync] }
            if let loops { command += ["--event-loop-threads", String(loops)] }
            if logFormat != "text" { command += ["--log-format", logFormat] }
            if let nodeConfig { command += ["--config", URL(fileURLWithPath: nodeConfig).standardizedFileURL.path] }
            return RingFile.Node(
                index: index, id: nil, host: host, port: ports[index - 1], pid: nil,
                dataDir: "\(nodeDir)/data", log: "\(nodeDir)/node.log", command: command, state: "new",
                metricsPort: metricsPorts[index - 1])
        }
        return (RingFile(replicationFactor: rf, vnodes: vnodes, nodes: nodes), true)
    }

    /// Starts every node in order, then waits for the healthy ones. A node that exits while
    /// starting is left down and returned (one bad data directory must not take the ring's
    /// healthy nodes down with it — Cassandra's nodes fail alone too); on any other failure, or
    /// when every node refused, stops what it started and rethrows.
    ///
    /// `mayMovePorts`: the ports were picked free in advance (bind to 0, release), so another
    /// process can take one before the node binds it; such a node is given fresh ports and
    /// launched again (up to 3 times) instead of being reported as refused.
    private static func start(
        _ supervisor: RingSupervisor, timeout: Duration, isNew: Bool, mayMovePorts: Bool
    ) async throws
        -> (RingStatus, String, [RefusedNode])
    {
        let clock = supervisor.clock
        let deadline = clock.now.advanced(by: timeout)
        func remaining() -> Duration { max(.seconds(1), deadline - clock.now) }
        let all = supervisor.state.nodes.map(\.index)
        do {
            var started: [Int] = []
            var refused: [RefusedNode] = []
            for node in supervisor.state.nodes {
                RingCommand.progress("starting node \(node.index) of \(all.count) on \(node.addressText)…")
                // A brand-new ring holds no data: its nodes join without streaming (Cassandra's
                // auto_bootstrap: false for a new cluster). Not recorded: a later start of a node
                // whose data directory was lost bootstraps.
                // Test hook: play "another process took this node's port first" (the race of
                // picking free ports in advance), to show the node is moved, not lost.
                var heldPort: Int32 = -1
                if ProcessInfo.processInfo.environment["CONFAB_TEST_TAKE_PORT_OF_NODE"] == String(node.index) {
                    heldPort = (try? LocalPorts.hold(node.port, host: node.host)) ?? -1
                }
                defer { if heldPort >= 0 { close(heldPort) } }
                var failure = await Self.launch(
                    supervisor, node.index, timeout: min(.seconds(30), remaining()),
                    extraArguments: isNew ? ["--auto-bootstrap", "false"] : [])
                var moves = 0
                while mayMovePorts, moves < 3, let lost = failure, lost.code == .startFailed,
                    lost.description.contains("Address already in use")
                {
                    moves += 1
                    try movePorts(of: node.index, in: supervisor)
                    let moved = try supervisor.state.node(node.index, directory: supervisor.directory)
                    RingCommand.progress(
                        "node \(node.index) lost its port to another process; starting it on \(moved.addressText)…")
                    failure = await Self.launch(
                        supervisor, node.index, timeout: min(.seconds(30), remaining()),
                        extraArguments: ["--auto-bootstrap", "false"])
                }
                if let failure {
                    guard failure.code == .startFailed else { throw failure }
                    RingCommand.progress(
                        "node \(node.index) refused to start; leaving it down and starting the others: \(failure)")
                    refused.append(RefusedNode(index: node.index, reason: "node \(node.index): \(failure)"))
                    continue
                }
                started.append(node.index)
                // One at a time, as Cassandra asks: the next node joins once this one sees the
                // ring so far as normal (its tokens are then known to the next one's allocator).
                try await supervisor.waitUntilNormal(askers: [node.index], expected: started, timeout: remaining())
            }
            guard !started.isEmpty else {
                throw RingCommandError(
                    .startFailed, "no node started:\n" + refused.map(\.reason).joined(separator: "\n"))
            }
            RingCommand.progress("waiting for \(started.count) node\(started.count == 1 ? "" : "s") to be normal…")
            let (status, answeredBy) = try await supervisor.waitUntilNormal(
                askers: started, expected: started, timeout: remaining())
            return (status, answeredBy, refused)
        } catch {
            RingCommand.progress(
                "start failed; stopping the nodes started so far (their logs stay in \(supervisor.directory))…")
            _ = try? supervisor.stop(all, timeout: .seconds(10))
            throw error
        }
    }

    /// Gives node `index` of a new ring fresh free ports (listen and metrics), in its record and
    /// its command line; when it is the seed (node 1), every node's `--seeds` follows.
    private static func movePorts(of index: Int, in supervisor: RingSupervisor) throws(RingCommandError) {
        let taken = Set(supervisor.state.nodes.flatMap { [$0.port, $0.metricsPort ?? 0] })
        func fresh(_ avoiding: Set<Int>) throws(RingCommandError) -> Int {
            var port = try LocalPorts.free(host: "127.0.0.1")
            while avoiding.contains(port) { port = try LocalPorts.free(host: "127.0.0.1") }
            return port
        }
        let port = try fresh(taken)
        let metricsPort = try fresh(taken.union([port]))
        let node = try supervisor.state.node(index, directory: supervisor.directory)
        let address = "\(node.host):\(port)"
        func replacing(_ flag: String, with value: String, in command: [String]) -> [String] {
            var command = command
            if let i = command.firstIndex(of: flag), i + 1 < command.count { command[i + 1] = value }
            return command
        }
        try supervisor.update(index) {
            $0.port = port
            $0.metricsPort = metricsPort
            $0.command = replacing("--listen", with: address, in: $0.command)
            $0.command = replacing("--metrics-port", with: String(metricsPort), in: $0.command)
        }
        if index == 1 {
            for other in supervisor.state.nodes {
                try supervisor.update(other.index) {
                    $0.command = replacing("--seeds", with: address, in: $0.command)
                }
            }
        }
    }

    /// Launches one node; its failure as a value (a `catch` pattern on the typed error crashes
    /// the 6.3 compiler's ownership verifier).
    private static func launch(
        _ supervisor: RingSupervisor, _ index: Int, timeout: Duration,
        extraArguments: [String]
    ) async -> RingCommandError? {
        do throws(RingCommandError) {
            try await supervisor.launch(index, timeout: timeout, extraArguments: extraArguments)
            return nil
        } catch {
            return error
        }
    }
}
