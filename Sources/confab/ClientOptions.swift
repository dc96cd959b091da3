import ArgumentParser
import ConfabChat
import ConfabClient
import ConfabProcess
import ConfabRing
import ConfabTransport
import ConfabWire

/// Options shared by the commands that talk to running nodes.
struct ClientOptions: ParsableArguments {
    @Option(
        name: .customLong("node"), parsing: .singleValue,
        help: ArgumentHelp(
            """
            A node to send requests to, host:port; repeat for fallbacks (tried in turn). Default: the \
            nodes of the ring in --dir (its ring.json) if there is one, else 127.0.0.1:\(NodeAddress.defaultPort).
            """, valueName: "host:port"))
    var nodes: [String] = []

    @Option(
        name: [.customLong("dir"), .customLong("ring-dir")],
        help: ArgumentHelp(
            """
            Ring directory whose ring.json lists the nodes to use when no --node is given (from \
            `confab ring start`). Default: $CONFAB_RING_DIR, else ./confab-ring.
            """, valueName: "dir"))
    var ringDir: String?

    @Option(help: ArgumentHelp("Consistency level: one, two, quorum or all.", valueName: "level"))
    var consistency: String = "quorum"

    @Option(help: ArgumentHelp("Seconds to wait for a node's answer before trying the next.", valueName: "seconds"))
    var timeout: Double = 10

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "Connect to the nodes over TLS, trusting these PEM CA certificates (for nodes run with --tls-cert).",
            valueName: "file"))
    var tlsCA: String?

    func validate() throws {
        _ = try level()
        _ = try addresses()
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func level() throws -> ConsistencyLevel {
        guard let l = ConsistencyLevel(named: consistency) else {
            throw ValidationError("unknown consistency level \"\(consistency)\"; use one, two, quorum or all")
        }
        return l
    }

    /// `--node` as given; else the ring directory's nodes (running ones first, the others as
    /// fallbacks); else the default port on 127.0.0.1. An explicit --dir without a ring.json is
    /// an error rather than a silent fallback.
    func addresses() throws -> [NodeAddress] {
        if nodes.isEmpty {
            let directory = RingFile.directory(ringDir)
            let state: RingFile?
            do {
                state = try RingFile.load(from: directory)
            } catch {
                throw ValidationError(error.message)
            }
            if let state {
                let running = state.runningNodes()
                return (running + state.nodes.filter { !running.contains($0) }).map(\.address)
            }
            if ringDir != nil {
                throw ValidationError(
                    "--dir \(directory) has no ring.json; start a ring there with `confab ring start --dir \(directory)` or pass --node"
                )
            }
            return [NodeAddress(host: "127.0.0.1", port: NodeAddress.defaultPort)]
        }
        return try nodes.map { text in
            guard let a = NodeAddress(hostPort: text), a.port > 0 else {
                throw ValidationError("--node \(text): expected host:port, e.g. 127.0.0.1:7400")
            }
            return a
        }
    }

    func makeClient() throws -> ConfabClient {
        var config = ConfabClient.Configuration(nodes: try addresses())
        config.schema = ChatSchema.registry
        config.requestTimeout = .milliseconds(Int(timeout * 1000))
        config.clientName = "confab-cli"
        config.tls = tlsCA.map { NodeTLS(trustRootsPath: $0) }
        return ConfabClient(configuration: config)
    }
}
