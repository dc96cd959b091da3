import ArgumentParser
import ConfabWire

/// `confab compact`: runs a major compaction (flush, then merge every SSTable into one) on running nodes.
struct CompactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Run a major compaction (flush, then merge every SSTable into one) on running nodes.",
        discussion: """
            Drops data that deletes shadow and that TTLs expired (within the engine's rules) and leaves one SSTable per node; it rewrites all data, so it takes a while on a large node. Sends an Admin request (docs/node_protocol.md § Admin) to every node of the ring in \
            --dir (or each --node) and prints one line per node with the time it took; exits \
            non-zero if any node failed or could not be reached. The engine work runs on each \
            node's I/O thread pool; the node keeps serving meanwhile.
            """)

    @OptionGroup var targets: AdminTargetOptions

    @Flag(
        help: ArgumentHelp(
            """
            Send one request to the first reachable node and let it run the compact on every ring member \
            it knows (instead of contacting each node from here).
            """))
    var fanOut = false

    @Option(help: ArgumentHelp("Seconds to wait for each node's answer.", valueName: "seconds"))
    var timeout: Double = 600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        try AdminCommandRunner.run(.compact, targets: targets, fanOut: fanOut, timeoutSeconds: timeout)
    }
}
