import ArgumentParser
import ConfabProcess
import ConfabWire
import Foundation

/// `confab ring restart N`: starts a stopped or killed node again, with its data.
struct RingRestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Start node N again with its original command line and data; returns when it is up and normal.",
        discussion: """
            The node keeps its address, host id and data directory. The command waits until every \
            running node sees every running node as up and normal, then prints the status.
            """)

    @Argument(help: ArgumentHelp("The node to start again, 1-based as in ring.json.", valueName: "N"))
    var node: Int

    @OptionGroup var ring: RingDirectoryOptions

    @Option(help: ArgumentHelp("Seconds to wait for the node to be up and normal.", valueName: "seconds"))
    var timeout: Double = 60

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let directory = ring.path
        let index = node
        let timeout = Duration.milliseconds(Int(self.timeout * 1000))
        let (status, answeredBy) = try RingCommand.guarded("restart") { () throws -> (RingStatus, String) in
            _ = try RingFile.require(in: directory)  // no ring: say so before touching the directory
            let lock = try RingDirectoryLock(directory: directory)
            let state = try RingFile.require(in: directory)
            let target = try state.node(index, directory: directory)
            if target.isAlive {
                throw RingCommandError(
                    .badNode,
                    """
                    node \(index) is already running (pid \(target.pid!), \(target.addressText)); \
                    `confab ring kill \(index)` or `confab ring stop` first
                    """)
            }
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            let result = try runBlocking { () async throws -> (RingStatus, String) in
                RingCommand.progress("restarting node \(index) on \(target.addressText)…")
                try await supervisor.launch(index, timeout: min(.seconds(30), timeout))
                let running = supervisor.state.runningNodes().map(\.index)
                RingCommand.progress("waiting for node \(index) to be normal…")
                return try await supervisor.waitUntilNormal(
                    askers: [index] + running.filter { $0 != index },
                    expected: running, timeout: timeout)
            }
            _ = consume lock
            return result
        }
        print(RingStatusTable.render(status, answeredBy: answeredBy))
    }
}
