import ArgumentParser
import ConfabChat
import ConfabClient
import Foundation

/// `confab chat history`: a chat's messages as the chat servers stored them, newest first.
struct ChatHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show a chat's messages (as the chat servers stored them), newest first.",
        discussion: """
            Messages order by seq, the chat's own sequence number (docs/chat_ordering.md). To page \
            back, pass the oldest seq shown as --before. The web client shows a chat's id under \
            the chat's details.
            """)

    @Argument(help: "The chat to read (a 64-bit integer).")
    var chatId: Int64

    @Option(help: "Most messages to show.")
    var limit: Int = 50

    @Option(help: ArgumentHelp("Only messages before this seq.", valueName: "seq"))
    var before: Int64?

    @Flag(
        help: "One JSON object per line (chatId, seq, prev, messageId, ts, sender, text, clientId) instead of a table.")
    var json = false

    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let client = try client.makeClient()
        let reader = ChatHistoryReader(storage: client, consistency: try self.client.level())
        let (chatId, limit, before) = (self.chatId, self.limit, self.before)
        let messages: [MessageRecord]
        do {
            messages = try runBlocking {
                defer { Task { await client.shutdown() } }
                return try await reader.messages(chatId: chatId, before: before, limit: limit)
            }
        } catch {
            FileHandle.standardError.write(Data("confab chat history: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for m in messages { print(String(decoding: try encoder.encode(m), as: UTF8.self)) }
            return
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        var rows: [[String]] = [["SEQ", "TIME (UTC)", "SENDER", "TEXT"]]
        for m in messages {
            rows.append([
                String(m.seq), formatter.string(from: Date(timeIntervalSince1970: Double(m.ts) / 1_000_000)), m.sender,
                m.text.replacingOccurrences(of: "\n", with: "⏎"),
            ])
        }
        var widths = [Int](repeating: 0, count: 4)
        for r in rows { for (i, cell) in r.enumerated() where i < 3 { widths[i] = max(widths[i], cell.count) } }
        for r in rows {
            print(
                r.enumerated().map { i, c in i < 3 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0) : c }
                    .joined(separator: "  "))
        }
        print("(\(messages.count) message\(messages.count == 1 ? "" : "s"))")
    }
}
