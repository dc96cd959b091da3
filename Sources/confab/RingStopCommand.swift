import ArgumentParser
import ConfabProcess
import Foundation

/// `confab ring stop`: stops every node gracefully (SIGTERM), SIGKILL after a timeout.
struct RingStopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop every node of the ring (SIGTERM; SIGKILL after --timeout).",
        discussion: """
            Each node finishes the requests it started, closes its engine and exits 0. ring.json \
            and the data stay: `confab ring start` with the same --dir starts the ring again with \
            its data; remove the directory for a fresh one.
            """)

    @OptionGroup var ring: RingDirectoryOptions

    @Option(
        help: ArgumentHelp(
            "Seconds to wait for the nodes to exit after SIGTERM before sending SIGKILL.",
            valueName: "seconds"))
    var timeout: Double = 20

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let directory = ring.path
        try RingCommand.guarded("stop") {
            _ = try RingFile.require(in: directory)  // no ring: say so before touching the directory
            let lock = try RingDirectoryLock(directory: directory)
            let state = try RingFile.require(in: directory)
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            let running = state.runningNodes()
            if running.isEmpty {
                try supervisor.stop(state.nodes.map(\.index), timeout: .seconds(1))  // records stale states
                print("no node of the ring in \(directory) is running")
                _ = consume lock
                return
            }
            RingCommand.progress("stopping \(running.count) node\(running.count == 1 ? "" : "s") (SIGTERM)…")
            let killed = try supervisor.stop(state.nodes.map(\.index), timeout: .milliseconds(Int(timeout * 1000)))
            let stopped = running.count - killed.count
            var line = "stopped \(stopped) node\(stopped == 1 ? "" : "s") in \(directory)"
            if !killed.isEmpty {
                line +=
                    "; killed node\(killed.count == 1 ? "" : "s") \(killed.map(String.init).joined(separator: ", ")) with SIGKILL"
            }
            print(line)
            _ = consume lock
        }
    }
}
