import ArgumentParser

@main
struct Confab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confab",
        abstract: "Confab: a Cassandra-like storage node for chat messages.",
        subcommands: [NodeCommand.self, RingCommand.self, PostCommand.self, HistoryCommand.self, FlushCommand.self, CompactCommand.self, RepairCommand.self, SSTableCommand.self, WALCommand.self, DebugCommand.self]
    )
}
