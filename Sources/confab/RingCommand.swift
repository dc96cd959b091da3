import ArgumentParser
import Foundation

/// `confab ring`: runs a multi-node ring of `confab node` processes on this machine.
struct RingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract:
            "Run a local ring of confab node processes on 127.0.0.1 (start, stop, kill, restart, status, add, decommission).",
        discussion: """
            The ring lives in a directory (--dir, else $CONFAB_RING_DIR, else ./confab-ring): \
            ring.json records each node's address, pid, data directory, log and command line; \
            node N keeps its data in DIR/nodeN/data and its output in DIR/nodeN/node.log. \
            Nodes run detached from the terminal and outlive the command that started them. \
            `confab post` and `confab history` without --node talk to the nodes in ring.json. \
            See docs/ring_cli.md.
            """,
        subcommands: [
            RingStartCommand.self, RingStopCommand.self, RingKillCommand.self,
            RingRestartCommand.self, RingStatusCommand.self, RingAddCommand.self, RingDecommissionCommand.self,
        ])

    /// A progress line on stderr (stdout carries only the results).
    @Sendable static func progress(_ line: String) {
        FileHandle.standardError.write(Data("\(line)\n".utf8))
    }

    /// Runs a subcommand's body; a failure prints "confab ring NAME: message" on stderr and
    /// exits 1.
    static func guarded<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            progress("confab ring \(name): \(error)")
            throw ExitCode.failure
        }
    }
}
