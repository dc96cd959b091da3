import ArgumentParser

/// Hidden tools used by the crash tests and the benchmark.
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug", abstract: "Tools for tests.", shouldDisplay: false,
        subcommands: [DebugCrashWriter.self])
}
