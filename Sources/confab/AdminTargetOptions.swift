import ArgumentParser
import ConfabProcess
import ConfabRing
import ConfabWire

/// Which running nodes `confab flush`, `compact` and `repair` talk to: `--node` as given, else the
/// nodes of the ring directory's ring.json. Unlike reads and writes, these act on specific nodes,
/// so the default is every node of the ring rather than any one.
struct AdminTargetOptions: ParsableArguments {
    @Option(
        name: .customLong("node"), parsing: .singleValue,
        help: ArgumentHelp(
            """
            A node to act on, host:port; repeat for several. Default: every node of the ring in \
            --dir (its ring.json).
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

    @Option(
        name: .customLong("cluster-secret-file"),
        help: ArgumentHelp(
            """
            The ring's cluster secret, to authenticate as an operator. Default: \
            $CONFAB_CLUSTER_SECRET_FILE, else the ring directory's cluster-secret.
            """, valueName: "file"))
    var clusterSecretFile: String?

    @Flag(help: "Print JSON (one object per line) instead of text.")
    var json = false

    func validate() throws {
        for text in nodes where NodeAddress(hostPort: text).map({ $0.port > 0 }) != true {
            throw ValidationError("--node \(text): expected host:port, e.g. 127.0.0.1:7400")
        }
    }

    /// How to authenticate as an operator (docs/security.md); nil when no secret is found.
    func credentials() throws -> ClusterCredentials? {
        try OperatorCredentials.resolve(file: clusterSecretFile, ringDirectory: RingFile.directory(ringDir))
    }

    /// `--node` in order; else the ring's nodes, running ones first.
    func addresses() throws -> [NodeAddress] {
        if !nodes.isEmpty { return nodes.compactMap { NodeAddress(hostPort: $0) } }
        let directory = RingFile.directory(ringDir)
        let state: RingFile?
        do {
            state = try RingFile.load(from: directory)
        } catch {
            throw ValidationError(error.message)
        }
        guard let state else {
            throw ValidationError(
                """
                no ring in \(directory) (no ring.json) and no --node given; start a ring with \
                `confab ring start`, or pass --dir or --node host:port
                """)
        }
        let running = state.runningNodes()
        return (running + state.nodes.filter { !running.contains($0) }).map(\.address)
    }
}
