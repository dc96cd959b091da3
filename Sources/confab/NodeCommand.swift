import ArgumentParser
import ConfabChat
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Logging
import NIOCore

/// `confab node`: runs one node in the foreground until SIGTERM or SIGINT.
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a Confab node (serves reads and writes over the Confab protocol).",
        discussion: """
            Settings come from --config (key = value lines, # comments) and then from flags, which \
            win. Config file keys: \(NodeConfiguration.keys.map(\.key).joined(separator: ", ")) \
            (docs/node.md). Once listening, the node prints one line, \
            "confab node <id> listening on <host>:<port>", on standard output.
            SIGTERM or SIGINT stops it gracefully: it stops accepting connections, answers the \
            requests it has started, closes the engine and exits 0. Acknowledged writes survive \
            kill -9 (they are in the write-ahead log per the sync mode).
            """)

    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp("Data directory (created if missing): engine files and the node id.", valueName: "dir"))
    var dataDir: String?

    @Option(
        help: ArgumentHelp(
            "Address to listen on for clients and peers; port 0 picks a free port. Default 127.0.0.1:7400.",
            valueName: "host:port"))
    var listen: String?

    @Option(help: ArgumentHelp("Config file of key = value lines; flags override it.", valueName: "file"))
    var config: String?

    @Option(
        help: ArgumentHelp(
            "Comma-separated seed nodes to join; none (or only this node) starts a new ring.",
            valueName: "host:port,..."))
    var seeds: String?

    @Option(help: ArgumentHelp("Number of vnode tokens this node owns (default 16).", valueName: "n"))
    var vnodes: Int?

    @Option(
        name: .customLong("rf"),
        help: ArgumentHelp("Replication factor (default 3; a ring of fewer nodes uses them all).", valueName: "n"))
    var replicationFactor: Int?

    @Option(
        help: ArgumentHelp(
            "Replication factor per keyspace, over --rf; every node of a ring needs the same (e.g. confab=3,chat=1).",
            valueName: "keyspace=n,..."))
    var replication: String?

    @Option(
        help: ArgumentHelp(
            "WAL sync mode: batch (fsync each write), group (shared fsync, default) or periodic[:MS].",
            valueName: "mode"))
    var sync: String?

    @Option(
        name: .customLong("cluster-name"),
        help: ArgumentHelp("Cluster name; nodes only talk within one cluster (default confab).", valueName: "name"))
    var clusterName: String?

    @Option(
        name: .customLong("max-in-flight"),
        help: ArgumentHelp("Requests one connection may have running at once (default 128).", valueName: "n"))
    var maxInFlight: Int?

    @Option(
        name: .customLong("io-threads"),
        help: ArgumentHelp("Threads for blocking engine reads (default 4).", valueName: "n"))
    var ioThreads: Int?

    @Option(
        name: .customLong("event-loop-threads"),
        help: ArgumentHelp(
            "Event-loop threads (default one per core). Nodes sharing a machine should split its cores.",
            valueName: "n"))
    var eventLoopThreads: Int?

    @Option(
        name: .customLong("hint-window-seconds"),
        help: ArgumentHelp("Keep hints only for replicas down less than this (default 10800 = 3 h).", valueName: "s"))
    var hintWindowSeconds: Int?

    @Option(
        name: .customLong("hint-replay-bytes-per-second"),
        help: ArgumentHelp("Hint replay throttle over all targets (default 1048576).", valueName: "n"))
    var hintReplayBytesPerSecond: Int?

    @Option(
        name: .customLong("gossip-interval-ms"),
        help: ArgumentHelp(
            "Gossip round interval (default 1000); failure detection takes about 18 rounds.", valueName: "ms"))
    var gossipIntervalMs: Int?

    @Option(
        name: .customLong("phi-convict-threshold"),
        help: ArgumentHelp("Failure detector threshold (default 8).", valueName: "phi"))
    var phiConvictThreshold: Double?

    @Option(
        name: .customLong("write-timeout-ms"),
        help: ArgumentHelp("Coordinator write timeout (default 2000).", valueName: "ms"))
    var writeTimeoutMs: Int?

    @Option(
        name: .customLong("read-timeout-ms"),
        help: ArgumentHelp("Coordinator read timeout (default 5000).", valueName: "ms"))
    var readTimeoutMs: Int?

    @Option(
        name: .customLong("ring-delay-ms"),
        help: ArgumentHelp(
            "Wait after announcing a join or leave before streaming, so every node knows (default 5 gossip intervals).",
            valueName: "ms"))
    var ringDelayMs: Int?

    @Option(
        name: .customLong("auto-bootstrap"),
        help: ArgumentHelp(
            "Stream data when joining a ring that has normal nodes (default true).", valueName: "true|false"))
    var autoBootstrap: String?

    @Option(
        name: .customLong("cluster-secret-file"),
        help: ArgumentHelp(
            """
            The ring's shared secret (32 bytes, mode 0600; `confab ring start` creates one in the ring \
            directory). Peers and operators prove they hold it; without it a connection may only read and \
            write. Default: $CONFAB_CLUSTER_SECRET_FILE.
            """, valueName: "file"))
    var clusterSecretFile: String?

    @Option(
        name: .customLong("tls-cert"),
        help: ArgumentHelp(
            """
            PEM certificate chain: serve TLS on the node's port, to clients and nodes alike (needs \
            --tls-key; default plain TCP). An IP address the node is dialled at must be in its subjectAltName.
            """, valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "PEM CA certificates other nodes' certificates must chain to (with --tls-cert; default the system's).",
            valueName: "file"))
    var tlsCA: String?

    @Flag(
        name: .customLong("insecure-no-cluster-secret"),
        help:
            "Run without a cluster secret: any connection may act as a node or an operator (development and tests only)."
    )
    var insecureNoClusterSecret = false

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info).", valueName: "level")
    )
    var logLevel: String = "info"

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "text (default) or json (one JSON object per line: time, level, label, message, metadata).",
            valueName: "format"))
    var logFormat: String = "text"

    @Option(
        name: .customLong("metrics-port"),
        help: ArgumentHelp(
            "Serve /metrics, /health and /ready over HTTP on this port of the listen host (0 picks a free port); default off.",
            valueName: "port"))
    var metricsPort: Int?

    func makeConfiguration() throws -> NodeConfiguration {
        // The node serves the chat layer's tables (it has no DDL yet): docs/chat_data.md.
        var c = NodeConfiguration(dataDirectory: "", tables: ChatSchema.registry)
        if let config { c = try NodeConfiguration.load(file: config, base: c) }
        let flags: [(String, String?)] = [
            ("data_dir", dataDir), ("listen", listen), ("seeds", seeds), ("vnodes", vnodes.map(String.init)),
            ("replication_factor", replicationFactor.map(String.init)), ("replication", replication), ("sync", sync),
            ("cluster_name", clusterName),
            ("max_in_flight", maxInFlight.map(String.init)), ("io_threads", ioThreads.map(String.init)),
            ("event_loop_threads", eventLoopThreads.map(String.init)),
            ("hint_window_seconds", hintWindowSeconds.map(String.init)),
            ("hint_replay_bytes_per_second", hintReplayBytesPerSecond.map(String.init)),
            ("gossip_interval_ms", gossipIntervalMs.map(String.init)),
            ("phi_convict_threshold", phiConvictThreshold.map { String($0) }),
            ("write_timeout_ms", writeTimeoutMs.map(String.init)), ("read_timeout_ms", readTimeoutMs.map(String.init)),
            ("ring_delay_ms", ringDelayMs.map(String.init)), ("auto_bootstrap", autoBootstrap),
        ]
        for (key, value) in flags {
            if let value { try c.set(key, value, source: "--\(key.replacingOccurrences(of: "_", with: "-"))") }
        }
        try c.validate()
        return c
    }

    /// The secret from --cluster-secret-file or the environment; refuses to go without one unless
    /// told to (an open node lets anyone who reaches its port decommission it).
    func clusterSecret() throws -> ClusterSecret? {
        let environment = ProcessInfo.processInfo.environment[ClusterSecretFile.environmentVariable].flatMap {
            $0.isEmpty ? nil : $0
        }
        guard let path = clusterSecretFile ?? environment else {
            if insecureNoClusterSecret { return nil }
            throw ValidationError(
                """
                no cluster secret: pass --cluster-secret-file FILE (or set $\(ClusterSecretFile.environmentVariable)); \
                `confab ring start` creates one in the ring directory. --insecure-no-cluster-secret runs without \
                one, letting anyone who reaches the port act as a node or an operator (docs/security.md)
                """)
        }
        guard !insecureNoClusterSecret else {
            throw ValidationError(
                "--insecure-no-cluster-secret and a cluster secret file (\(path)) contradict each other")
        }
        do {
            return try ClusterSecretFile.load(path)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
        var parsed: NodeConfiguration
        do {
            parsed = try makeConfiguration()
        } catch let error as NodeError {
            throw ValidationError(error.message)
        }
        parsed.clusterSecret = try clusterSecret()
        if tlsCert != nil || tlsKey != nil || tlsCA != nil {
            guard tlsCert != nil, tlsKey != nil else {
                throw ValidationError(
                    "TLS needs both --tls-cert and --tls-key (and --tls-ca unless the system trusts the certificates)")
            }
            parsed.tls = NodeTLS(certificateChainPath: tlsCert, privateKeyPath: tlsKey, trustRootsPath: tlsCA)
        }
        let configuration = parsed
        // Before anything uses NIO's singleton group (the node's listeners, the operations port).
        if let threads = configuration.eventLoopThreads { NIOSingletons.groupLoopCountSuggestion = threads }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be 0...65535")
        }
        let format = try LogFormat.parse(logFormat)
        // Before any instrument exists (the node's are made when it starts).
        MetricsBootstrap.bootstrap()
        format.bootstrap(level: level)
        FileDescriptorLimit.raiseToHard()
        let node = Node(configuration: configuration)
        let metricsPort = self.metricsPort
        try runBlocking {
            // Bound before the node starts: /health answers at once, /ready once the ring is known.
            let operations = try await metricsPort.asyncMap {
                try await Self.startOperations(node, host: configuration.listen.host, port: $0)
            }
            defer { if let operations { Task { await operations.close() } } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await node.runUntilTerminated() }
                group.addTask {
                    guard let address = try? await node.listeningAddress() else { return }
                    let host = address.ipAddress ?? configuration.listen.host
                    let shownHost = host.contains(":") ? "[\(host)]" : host
                    let line =
                        "confab node \(node.nodeID ?? "?") listening on \(shownHost):\(address.port ?? configuration.listen.port)"
                        + " (data: \(configuration.dataDirectory), sync: \(configuration.syncMode))\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
                group.addTask {
                    // After a decommission the node has left the ring and answered the operator:
                    // shut down as SIGTERM would.
                    guard await node.waitUntilDecommissioned() else { return }
                    kill(getpid(), SIGTERM)
                }
                try await group.waitForAll()
            }
        }
    }

    /// Starts the operations port and prints "confab node metrics on http://HOST:PORT/metrics"
    /// (port 0 resolved), so launchers and people find it.
    private static func startOperations(_ node: Node, host: String, port: Int) async throws -> OperationsHTTPServer {
        let server: OperationsHTTPServer
        do {
            server = try await OperationsHTTPServer.start(
                host: host, port: port, logger: Logger(label: "confab.node.ops")
            ) { path in
                await node.operationsResponse(path: path, exposition: MetricsBootstrap.exposition)
            }
        } catch {
            throw ValidationError("cannot serve --metrics-port \(port) on \(host): \(error)")
        }
        let bound = server.localAddress?.port ?? port
        let shownHost = host.contains(":") ? "[\(host)]" : host
        FileHandle.standardOutput.write(Data("confab node metrics on http://\(shownHost):\(bound)/metrics\n".utf8))
        return server
    }
}

extension Optional {
    /// `map` with an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
