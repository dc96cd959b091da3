import ArgumentParser
import ConfabProcess

/// `--dir`, shared by the `confab ring` subcommands.
struct RingDirectoryOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The ring's directory (ring.json, nodeN/data, nodeN/node.log). Default: $CONFAB_RING_DIR, else ./confab-ring.",
            valueName: "dir"))
    var dir: String?

    /// Absolute.
    var path: String { RingFile.directory(dir) }
}
