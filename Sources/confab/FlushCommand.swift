import ArgumentParser
import ConfabWire

/// `confab flush`: writes every memtable to an SSTable on running nodes and waits until it is on disk.
struct FlushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush",
        abstract: "Write every memtable to an SSTable on running nodes and wait until it is on disk.",
        discussion: """
            Useful before copying a node's files, or to make recent writes part of the next compaction. Sends an Admin request (docs/node_protocol.md § Admin) to every node of the ring in \
            --dir (or each --node) and prints one line per node with the time it took; exits \
            non-zero if any node failed or could not be reached. The engine work runs on each \
            node's I/O thread pool; the node keeps serving meanwhile.
            """)

    @OptionGroup var targets: AdminTargetOptions

    @Flag(
        help: ArgumentHelp(
            """
            Send one request to the first reachable node and let it run the flush on every ring member \
            it knows (instead of contacting each node from here).
            """))
    var fanOut = false

    @Option(help: ArgumentHelp("Seconds to wait for each node's answer.", valueName: "seconds"))
    var timeout: Double = 600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        try AdminCommandRunner.run(.flush, targets: targets, fanOut: fanOut, timeoutSeconds: timeout)
    }
}
