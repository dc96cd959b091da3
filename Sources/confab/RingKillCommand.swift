import ArgumentParser
import ConfabProcess
import Foundation

/// `confab ring kill N`: SIGKILL one node, as a crash would.
struct RingKillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Kill node N with SIGKILL (a crash: no shutdown, its data dir kept).",
        discussion: "Bring it back with `confab ring restart N`.")

    @Argument(help: ArgumentHelp("The node to kill, 1-based as in ring.json.", valueName: "N"))
    var node: Int

    @OptionGroup var ring: RingDirectoryOptions

    func run() throws {
        let directory = ring.path
        try RingCommand.guarded("kill") {
            _ = try RingFile.require(in: directory)  // no ring: say so before touching the directory
            let lock = try RingDirectoryLock(directory: directory)
            let state = try RingFile.require(in: directory)
            let supervisor = RingSupervisor(directory: directory, state: state, progress: RingCommand.progress)
            let target = try state.node(node, directory: directory)
            guard target.isAlive, let pid = target.pid else {
                throw RingCommandError(
                    .notRunning, "node \(node) (\(target.addressText)) is not running; nothing to kill")
            }
            target.process?.send(SIGKILL)
            guard target.process?.waitForExit(timeout: .seconds(5)) ?? true else {
                throw RingCommandError(
                    .timeout, "node \(node) (pid \(pid)) is still there 5 s after SIGKILL; check it with `ps -p \(pid)`"
                )
            }
            try supervisor.update(node) { $0.state = "killed" }
            ServerProcess.note("killed with SIGKILL (confab ring kill \(node))", inLog: target.log)
            print(
                "killed node \(node) (pid \(pid), \(target.addressText)) with SIGKILL; "
                    + "bring it back with `confab ring restart \(node)\(ring.dir == nil ? "" : " --dir \(directory)")`")
            _ = consume lock
        }
    }
}
