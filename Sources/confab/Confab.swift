import ArgumentParser

@main
struct Confab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confab",
        abstract: "Confab: a Cassandra-like storage ring for chat messages and a real-time chat server on top of it.",
        subcommands: [
            UpCommand.self, NodeCommand.self, RingCommand.self, ChatCommand.self, PostCommand.self, HistoryCommand.self,
            FlushCommand.self, CompactCommand.self, RepairCommand.self, SSTableCommand.self, WALCommand.self,
        ]
    )
}
