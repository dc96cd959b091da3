import ArgumentParser

/// `confab sstable verify|dump FILE` (filled in by the SSTable work).
struct SSTableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sstable", abstract: "Inspect SSTable files.")
}
