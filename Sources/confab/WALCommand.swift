import ArgumentParser

/// `confab wal dump FILE` (filled in by the WAL work).
struct WALCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wal", abstract: "Inspect write-ahead log segments.")
}
