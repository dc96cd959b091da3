import ArgumentParser
import ConfabChat
import ConfabClient
import Foundation

/// `confab post`: writes one chat message through a running node and prints its id.
struct PostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "post",
        abstract: "Post one message to a chat; prints the new message id.",
        discussion: """
            The message gets a new id and the current time (µs since the epoch) as its timestamp. \
            It is durable on as many replicas as --consistency requires when the command succeeds.
            """)

    @Argument(help: "The chat to post to (a 64-bit integer).")
    var chatId: Int64

    @Option(help: "Who sends the message.")
    var sender: String

    @Option(help: "The message text.")
    var text: String

    @OptionGroup var client: ClientOptions

    func run() throws {
        let client = try client.makeClient()
        let (chatId, sender, text, level) = (self.chatId, self.sender, self.text, try self.client.level())
        do {
            let message = try runBlocking {
                defer { Task { await client.shutdown() } }
                return try await client.post(chatId: chatId, sender: sender, text: text, consistency: level)
            }
            print(message.messageId)
        } catch {
            FileHandle.standardError.write(Data("confab post: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
