import ArgumentParser
import ConfabClient
import ConfabProcess
import ConfabWire
import Foundation

/// `confab ring decommission N`: node N hands its data to the others, leaves the ring and exits;
/// ring.json forgets it.
struct RingDecommissionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decommission",
        abstract:
            "Node N leaves the ring: it streams its ranges to the nodes that take them over, announces LEFT and exits.",
        discussion: """
            Sends node N an Admin decommission request and waits for it (streaming included): the \
            node goes LEAVING (writes to its ranges also reach their new owners), streams every \
            range it replicates to the nodes that gain it, announces LEFT and shuts down. ring.json \
            then no longer lists it (its data directory and log stay on disk; the node refuses to \
            start from that directory again). If streaming fails the node goes back to NORMAL, \
            keeps its data, and the command fails: fix the cause and run it again. \
            See docs/ring.md § Decommission.
            """)

    @Argument(help: ArgumentHelp("The node to remove, numbered as in ring.json.", valueName: "N"))
    var node: Int

    @OptionGroup var ring: RingDirectoryOptions

    @Option(help: ArgumentHelp("Seconds to wait for the decommission (streaming included).", valueName: "seconds"))
    var timeout: Double = 600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let directory = ring.path
        let index = node
        let timeout = Duration.milliseconds(Int(self.timeout * 1000))
        let (status, answeredBy) = try RingCommand.guarded("decommission") { () throws -> (RingStatus, String) in
            _ = try RingFile.require(in: directory)  // no ring: say so before touching the directory
            let lock = try RingDirectoryLock(directory: directory)
            let state = try RingFile.require(in: directory)
            let target = try state.node(index, directory: directory)
            guard target.isAlive, let pid = target.pid else {
                throw RingCommandError(
                    .notRunning,
                    """
                    node \(index) (\(target.addressText)) is not running; a node hands its data off only while it runs: \
                    `confab ring restart \(index)` first
                    """)
            }
            let others = state.runningNodes().filter { $0.index != index }
            guard !others.isEmpty else {
                throw RingCommandError(
                    .badNode,
                    "node \(index) is the only running node; there is no node to hand its data to (use `confab ring stop`)"
                )
            }
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            RingCommand.progress(
                "decommissioning node \(index) (\(target.addressText)): LEAVING, then streaming its ranges "
                    + "to the nodes that take them over (log: \(target.log))…")
            let started = ContinuousClock.now
            try runBlocking {
                let client = RingSupervisor.statusClient(
                    target.address, timeout: timeout,
                    credentials: try OperatorCredentials.resolve(file: nil, ringDirectory: directory))
                defer { Task { await client.shutdown() } }
                _ = try await client.admin(.decommission, scope: .node, at: target.address, timeout: timeout)
            }
            RingCommand.progress(
                "node \(index) handed its ranges off and announced LEFT in "
                    + "\(RingSupervisor.seconds(.milliseconds(Int((ContinuousClock.now - started).ringMillis))));"
                    + " waiting for its process to exit…")
            if !(target.process?.waitForExit(timeout: .seconds(30)) ?? true) {
                RingCommand.progress("node \(index) (pid \(pid)) is still running 30 s after leaving; sending SIGTERM")
                _ = try? supervisor.stop([index], timeout: .seconds(10))
            }
            ServerProcess.note(
                "decommissioned (confab ring decommission \(index)); removed from ring.json", inLog: target.log)
            // Forget it; nodes that named it as their seed get the lowest-numbered remaining node
            // instead, so the ring can start again after `ring stop`.
            var after = supervisor.state
            after.nodes.removeAll { $0.index == index }
            if let newSeed = after.nodes.first?.addressText {
                for i in after.nodes.indices {
                    var command = after.nodes[i].command
                    if let s = command.firstIndex(of: "--seeds"), s + 1 < command.count {
                        let seeds = command[s + 1].split(separator: ",").map(String.init).filter {
                            $0 != target.addressText
                        }
                        command[s + 1] = (seeds.isEmpty ? [newSeed] : seeds).joined(separator: ",")
                        after.nodes[i].command = command
                    }
                }
            }
            try after.save(to: directory)
            let remaining = RingSupervisor(directory: directory, state: after, progress: RingCommand.progress)
            let running = after.runningNodes().map(\.index)
            RingCommand.progress(
                "node \(index) left the ring; its data directory stays in \(target.dataDir) (remove it when you like)")
            let result = try runBlocking { () async throws -> (RingStatus, String) in
                try await remaining.waitUntilNormal(askers: running, expected: running, timeout: .seconds(60))
            }
            _ = consume lock
            return result
        }
        print(RingStatusTable.render(status, answeredBy: answeredBy))
    }
}

extension Duration {
    var ringMillis: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
