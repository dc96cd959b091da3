import ArgumentParser
import ConfabClient
import ConfabProcess
import ConfabRing
import ConfabWire
import Foundation

/// `confab ring status`: the ring as a live node sees it, like `nodetool status`.
struct RingStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the ring as a live node sees it (like nodetool status), and which node processes run here.",
        discussion: """
            Asks the nodes in ring.json (running ones first), or --node, in turn; the first that \
            answers reports. Columns: Status/State (U up, D down; N normal, J joining, L leaving, \
            M moving), Address, Load (bytes on disk), Tokens (vnodes), Owns (effective: the share \
            of the data it holds a replica of), Host ID. --json prints the answer as one JSON \
            object (cluster_name, replication_factor, nodes: state, is_up, id, host, port, \
            load_bytes, tokens, ownership, metrics_url: the node's /metrics URL when this machine's ring.json records one).
            """)

    @OptionGroup var ring: RingDirectoryOptions

    @Option(
        name: .customLong("node"), parsing: .singleValue,
        help: ArgumentHelp(
            "Ask this node (host:port) instead of the ones in ring.json; repeat for fallbacks.",
            valueName: "host:port"))
    var nodes: [String] = []

    @Flag(help: "Print the ring status as JSON instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Seconds to wait for each node's answer.", valueName: "seconds"))
    var timeout: Double = 3

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        for text in nodes where NodeAddress(hostPort: text).map({ $0.port > 0 }) != true {
            throw ValidationError("--node \(text): expected host:port, e.g. 127.0.0.1:7400")
        }
    }

    func run() throws {
        let directory = ring.path
        let (json, nodes, timeout) = (self.json, self.nodes, Duration.milliseconds(Int(self.timeout * 1000)))
        let output = try RingCommand.guarded("status") { () throws -> String in
            let state = try RingFile.load(from: directory)
            var candidates: [RingFile.Node] = []
            if !nodes.isEmpty {
                candidates = nodes.enumerated().map { i, text in
                    let a = NodeAddress(hostPort: text)!
                    return RingFile.Node(
                        index: i + 1, host: a.host, port: a.port, dataDir: "", log: "", command: [], state: "")
                }
            } else if let state {
                let running = state.runningNodes()
                candidates = running + state.nodes.filter { !running.contains($0) }
            } else {
                throw RingCommandError(
                    .noRing,
                    """
                    no ring in \(directory) (no ring.json) and no --node given; start a ring with \
                    `confab ring start`, or pass --dir or --node host:port
                    """)
            }
            let asked = candidates
            let (status, answeredBy) = try runBlocking {
                try await Self.ask(
                    asked, timeout: timeout, directory: directory,
                    fromRingFile: nodes.isEmpty)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                return try Self.jsonWithMetricsURLs(try encoder.encode(status), state: state)
            }
            var text = RingStatusTable.render(status, answeredBy: answeredBy)
            if let state {
                text +=
                    "\n\n"
                    + RingStatusTable.render(processes: state, alive: \.isAlive, directory: directory)
            }
            return text
        }
        print(output)
    }

    /// The status JSON with each node's `metrics_url` (its operations port, from ring.json,
    /// matched by address; null for nodes this machine did not start).
    static func jsonWithMetricsURLs(_ data: Data, state: RingFile?) throws -> String {
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let nodes = object["nodes"] as? [[String: Any]]
        else { return String(decoding: data, as: UTF8.self) }
        object["nodes"] = nodes.map { node -> [String: Any] in
            var node = node
            let host = node["host"] as? String
            let port = node["port"] as? Int
            let recorded = state?.nodes.first { $0.host == host && $0.port == port }
            node["metrics_url"] = recorded?.metricsURL ?? NSNull()
            return node
        }
        let out = try JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: out, as: UTF8.self)
    }

    /// The first answer among `candidates`, tried in order.
    private static func ask(
        _ candidates: [RingFile.Node], timeout: Duration, directory: String,
        fromRingFile: Bool
    ) async throws -> (RingStatus, String) {
        var failures: [(address: String, error: any Error)] = []
        for node in candidates {
            let client = RingSupervisor.statusClient(node.address, timeout: timeout)
            do {
                var status = try await client.status()
                await client.shutdown()
                RingSupervisor.fillAddress(&status, answeredBy: node)
                return (status, node.addressText)
            } catch {
                await client.shutdown()
                failures.append((node.addressText, error))
            }
        }
        let hint =
            fromRingFile
            ? "the ring in \(directory) is not running; start it with `confab ring start\(directory == RingFile.directory(nil) ? "" : " --dir \(directory)")`"
            : "is a node running there?"
        let refused = failures.allSatisfy { ($0.error as? ConfabClientError)?.code == .noNodeReachable }
        let detail =
            refused
            ? "nothing listens at \(failures.map(\.address).joined(separator: ", "))"
            : failures.map { "\($0.address): \($0.error)" }.joined(separator: "; ")
        throw RingCommandError(.noNodeAnswered, "no node answered (\(detail)); \(hint)")
    }
}
