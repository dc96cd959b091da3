import ArgumentParser
import ConfabChat
import ConfabClient
import Foundation

/// `confab history`: reads a chat's messages newest first.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show a chat's messages, newest first.",
        discussion: """
            Timestamps are microseconds since the Unix epoch. To page back, pass the oldest \
            timestamp shown as --before.
            """)

    @Argument(help: "The chat to read (a 64-bit integer).")
    var chatId: Int64

    @Option(help: "Most messages to show.")
    var limit: Int = 50

    @Option(help: ArgumentHelp("Only messages older than this timestamp (µs since the epoch).", valueName: "µs"))
    var before: Int64?

    @Option(help: ArgumentHelp("Only messages newer than this timestamp (µs since the epoch).", valueName: "µs"))
    var after: Int64?

    @Flag(help: "One JSON object per line (chat_id, timestamp, message_id, sender, text) instead of a table.")
    var json = false

    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let client = try client.makeClient()
        let (chatId, limit, before, after, level) = (
            self.chatId, self.limit, self.before, self.after, try self.client.level()
        )
        let messages: [PostedMessage]
        do {
            messages = try runBlocking {
                defer { Task { await client.shutdown() } }
                return try await client.history(
                    chatId: chatId, limit: limit, before: before, after: after,
                    consistency: level)
            }
        } catch {
            FileHandle.standardError.write(Data("confab history: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for m in messages {
                print(String(decoding: try encoder.encode(m), as: UTF8.self))
            }
        } else {
            print(Self.table(messages))
        }
    }

    static func table(_ messages: [PostedMessage]) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        var rows: [[String]] = [["TIME (UTC)", "TIMESTAMP", "SENDER", "TEXT"]]
        for m in messages {
            let date = Date(timeIntervalSince1970: Double(m.timestamp) / 1_000_000)
            let text = m.text.replacingOccurrences(of: "\n", with: "⏎")
            rows.append([formatter.string(from: date), String(m.timestamp), m.sender, text])
        }
        var widths = [Int](repeating: 0, count: 4)
        for r in rows { for (i, cell) in r.enumerated() where i < 3 { widths[i] = max(widths[i], cell.count) } }
        var lines = rows.map { r in
            r.enumerated().map { i, cell in
                i < 3 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) : cell
            }
            .joined(separator: "  ")
        }
        lines.append("(\(messages.count) message\(messages.count == 1 ? "" : "s"))")
        return lines.joined(separator: "\n")
    }
}
