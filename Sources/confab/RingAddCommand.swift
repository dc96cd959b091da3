import ArgumentParser
import ConfabProcess
import ConfabWire
import Foundation

/// `confab ring add`: one more node for a running ring; it bootstraps and the command returns
/// once it is normal.
struct RingAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract:
            "Start one more node in the ring directory; it bootstraps (streams its ranges) and the command returns when it is normal.",
        discussion: """
            The new node (the next number in ring.json, DIR/nodeN) gets the ring's replication factor, \
            vnodes and sync mode and the running nodes as seeds. It announces JOINING with balanced \
            tokens, waits for the ring to learn them (writes to its ranges reach it from then on), \
            streams every range it will replicate from the current replicas, and goes NORMAL; the \
            command prints progress, then the status table. If it is not normal within --timeout, \
            the new node is stopped and removed from ring.json (its log and data directory stay): \
            a node never becomes NORMAL without its data. See docs/ring.md § Bootstrap.
            """)

    @OptionGroup var ring: RingDirectoryOptions

    @Option(help: ArgumentHelp("Port for the new node (default: a free port the system picks).", valueName: "port"))
    var port: Int?

    @Option(
        help: ArgumentHelp("Seconds to wait for the new node to be normal (streaming included).", valueName: "seconds"))
    var timeout: Double = 300

    func validate() throws {
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be between 1 and 65535") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let directory = ring.path
        let timeout = Duration.milliseconds(Int(self.timeout * 1000))
        let requestedPort = port
        let (status, answeredBy) = try RingCommand.guarded("add") { () throws -> (RingStatus, String) in
            _ = try RingFile.require(in: directory)  // no ring: say so before touching the directory
            let lock = try RingDirectoryLock(directory: directory)
            var state = try RingFile.require(in: directory)
            let running = state.runningNodes()
            guard !running.isEmpty else {
                throw RingCommandError(
                    .notRunning,
                    """
                    no node of the ring in \(directory) is running; start it with `confab ring start --dir \(directory)` \
                    before adding a node
                    """)
            }
            let host = "127.0.0.1"
            let port: Int
            if let requestedPort {
                guard LocalPorts.isFree(requestedPort, host: host) else {
                    throw RingCommandError(
                        .startFailed, "port \(requestedPort) is in use; pick another --port or leave it out")
                }
                port = requestedPort
            } else {
                port = try LocalPorts.free(host: host)
            }
            let index = (state.nodes.map(\.index).max() ?? 0) + 1
            let nodeDir = "\(directory)/node\(index)"
            var command = [
                ServerProcess.confabExecutable(), "node", "--data-dir", "\(nodeDir)/data",
                "--listen", "\(host):\(port)",
                "--seeds", running.prefix(3).map(\.addressText).joined(separator: ","),
                "--rf", String(state.replicationFactor), "--vnodes", String(state.vnodes),
            ]
            // The ring's node settings, as the running nodes were started with them.
            let template = running.first?.command ?? []
            for flag in [
                "--sync", "--gossip-interval-ms", "--ring-delay-ms", "--write-timeout-ms", "--read-timeout-ms",
                "--log-format", "--event-loop-threads",
            ] {
                if let i = template.firstIndex(of: flag), i + 1 < template.count { command += [flag, template[i + 1]] }
            }
            // Its own operations port, as `ring start` gives every node.
            var metricsPort = try LocalPorts.free(host: host)
            while metricsPort == port { metricsPort = try LocalPorts.free(host: host) }
            command += ["--metrics-port", String(metricsPort)]
            state.nodes.append(
                RingFile.Node(
                    index: index, id: nil, host: host, port: port, pid: nil, dataDir: "\(nodeDir)/data",
                    log: "\(nodeDir)/node.log", command: command, state: "new", metricsPort: metricsPort))
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            try supervisor.save()
            let expected = running.map(\.index) + [index]
            let result: (RingStatus, String)
            do {
                result = try runBlocking { () async throws -> (RingStatus, String) in
                    RingCommand.progress(
                        "starting node \(index) on \(host):\(port); it bootstraps: announces JOINING, "
                            + "waits for the ring to learn its tokens, streams its ranges from their replicas, then goes normal…"
                    )
                    try await supervisor.launch(index, timeout: min(.seconds(30), timeout))
                    RingCommand.progress(
                        "node \(index) is up and joining; waiting for it to stream and be normal (log: \(nodeDir)/node.log)…"
                    )
                    // Asked of the new node first: a node of the ring that is down (or dies meanwhile)
                    // must not stop the join — its ranges stream from other replicas.
                    let result = try await supervisor.waitUntilNormal(
                        askers: [index], expected: [index], timeout: timeout)
                    // Then until the running nodes have heard (the next ring change needs that).
                    let others = supervisor.state.runningNodes().map(\.index).filter { $0 != index }
                    do {
                        try await supervisor.waitUntilNormal(askers: others, expected: [index], timeout: .seconds(30))
                    } catch {
                        RingCommand.progress("note: not every running node sees node \(index) as normal yet: \(error)")
                    }
                    return result
                }
            } catch {
                RingCommand.progress(
                    "node \(index) did not become normal; stopping it and removing it from ring.json "
                        + "(its log and data stay in \(nodeDir); a new `confab ring add` starts afresh)…")
                _ = try? supervisor.stop([index], timeout: .seconds(10))
                var after = supervisor.state
                after.nodes.removeAll { $0.index == index }
                try? after.save(to: directory)
                throw error
            }
            RingCommand.progress(
                "node \(index) bootstrapped and is normal; the ring has \(expected.count) nodes started here")
            _ = consume lock
            return result
        }
        print(RingStatusTable.render(status, answeredBy: answeredBy))
    }
}
