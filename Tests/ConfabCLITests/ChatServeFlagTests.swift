import Foundation
import Testing

/// `confab chat serve` flags that only configure the server: refused with their rule when out of
/// range, before anything starts; shown in `--help`.
@Suite struct ChatServeFlagTests {
    @Test func pingIntervalIsValidatedAndDocumented() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        for bad in ["0", "3601"] {
            let run = try await TestCommand.run(binary, ["chat", "serve", "--ping-interval", bad])
            #expect(run.status != 0)
            #expect(run.err.contains("--ping-interval must be 1...3600 seconds (got \(bad))"), "\(run.err)")
        }
        let help = try await TestCommand.run(binary, ["chat", "serve", "--help"])
        #expect(help.status == 0)
        #expect(help.out.contains("--ping-interval"), "\(help.out)")
    }

    @Test func eventLoopThreadsAreValidatedAndDocumented() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        for command in [["chat", "serve"], ["node", "--data-dir", "/nonexistent-confab-test"], ["ring", "start"]] {
            let run = try await TestCommand.run(binary, command + ["--event-loop-threads", "0"])
            #expect(run.status != 0, "\(command)")
            #expect(run.err.contains("event"), "\(command): \(run.err)")
            let help = try await TestCommand.run(binary, command.prefix(command[0] == "node" ? 1 : 2) + ["--help"])
            #expect(help.out.contains("--event-loop-threads"), "\(command): \(help.out)")
        }
    }
}
