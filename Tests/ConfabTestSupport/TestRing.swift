import ConfabClient
import ConfabProcess
import ConfabRing
import Foundation

/// A fresh ring of `confab node` processes on 127.0.0.1 (port 0 each), for the multi-process
/// chat and browser tests.
package enum TestRing {
    /// Quick gossip and timeouts; RF 3 over 16 vnodes. A fresh, empty ring has nothing to stream,
    /// so nodes join without bootstrapping (which serializes joins and would make start-up slower
    /// and order-dependent).
    package static let nodeFlags = [
        "--rf", "3", "--vnodes", "16", "--gossip-interval-ms", "200", "--write-timeout-ms", "2000",
        "--auto-bootstrap", "false", "--log-level", "warning", "--insecure-no-cluster-secret",
    ]

    /// What a node prints once its port is bound.
    package static let listeningMarker = "listening on 127.0.0.1:"

    /// Starts `count` nodes in `directory` (`node1`…: data directory and `<tag>.log`): the first
    /// alone, then the others seeded by it, and waits until every node sees all of them normal
    /// and up. Returns them in order, with their ports.
    package static func start(
        binary: String, count: Int = 3, directory: String, extraFlags: [String] = []
    ) async throws -> (nodes: [TestServer], ports: [Int]) {
        var nodes: [TestServer] = []
        var ports: [Int] = []
        do {
            let first = try node(binary: binary, index: 1, directory: directory, flags: extraFlags)
            nodes.append(first)
            ports.append(try await first.port(after: listeningMarker))
            let seeds = ["--seeds", "127.0.0.1:\(ports[0])"]
            for i in stride(from: 2, through: count, by: 1) {
                nodes.append(try node(binary: binary, index: i, directory: directory, flags: extraFlags + seeds))
            }
            for node in nodes.dropFirst() { ports.append(try await node.port(after: listeningMarker)) }
            try await waitUntilNormal(ports: ports, logs: nodes)
        } catch {
            for node in nodes { node.kill() }
            throw error
        }
        return (nodes, ports)
    }

    /// Node `index` (1-based) of a ring in `directory`, listening on `listen`.
    package static func node(
        binary: String, index: Int, directory: String, listen: String = "127.0.0.1:0", flags: [String],
        tag: String? = nil
    ) throws -> TestServer {
        try TestServer(
            binary: binary,
            arguments: ["node", "--data-dir", "\(directory)/node\(index)", "--listen", listen] + nodeFlags + flags,
            logDir: directory, tag: tag ?? "node\(index)")
    }

    /// Waits until every node in `ports` sees all of them NORMAL and up. A poll (every 100 ms):
    /// gossip convergence is visible only in each node's status answer.
    package static func waitUntilNormal(
        ports: [Int], logs: [TestServer] = [], within: Duration = .seconds(30)
    ) async throws {
        let deadline = ContinuousClock.now + within
        for port in ports {
            var config = ConfabClient.Configuration(nodes: [NodeAddress(host: "127.0.0.1", port: port)])
            config.requestTimeout = .seconds(2)
            let client = ConfabClient(configuration: config)
            defer { Task { await client.shutdown() } }
            while true {
                let status = try? await client.status()
                if let status, status.nodes.count == ports.count,
                    status.nodes.allSatisfy({ $0.state == "normal" && $0.isUp })
                {
                    break
                }
                guard ContinuousClock.now < deadline else {
                    let seen = status.map { "\($0.nodes.map { "\($0.state)/\($0.isUp)" })" } ?? "no status"
                    let tails = logs.map { "\($0.tag): \($0.logTail(800))" }.joined(separator: "\n")
                    throw ProcessTestError(
                        "the ring did not converge to \(ports.count) normal nodes within \(within) (127.0.0.1:\(port) sees \(seen));\n\(tails)"
                    )
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

extension TestRing {
    /// Stops whatever nodes a ring directory (`confab ring start --dir`) still runs: SIGTERM, then
    /// SIGKILL after 10 s. For a test's `defer`, which cannot await `confab ring stop`.
    package static func stopNodes(inRingDirectory directory: String) {
        guard let ring = try? RingFile.load(from: directory) else { return }
        ServerProcess.stop(ring.nodes.compactMap(\.process), grace: .seconds(10))
    }
}
