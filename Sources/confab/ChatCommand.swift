import ArgumentParser

/// `confab chat`: the chat server.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Run a chat server over a running ring, or read a chat's messages (docs/chat_protocol.md).",
        subcommands: [ChatServeCommand.self, ChatHistoryCommand.self])
}
