import Foundation
import Subprocess

/// A command run to completion by a test (`confab ring status`, `confab post`, a Python helper)
/// through swift-subprocess: its exit status and its whole stdout and stderr. Async, so a test
/// waiting for a command does not hold one of the cooperative pool's threads (one per core, two
/// here) while in-process nodes of other tests need them.
package struct TestCommand: Sendable {
    /// Exit code, or -N when signal N ended it.
    package var status: Int32
    package var out: String
    package var err: String

    /// Runs `executable arguments…` with our environment plus `environment`. Output is collected
    /// to EOF, so a command that leaves a child holding its stdout open (a node it started) hangs
    /// here rather than passing: `confab ring start` must not do that.
    package static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> TestCommand {
        var changes: [Environment.Key: String?] = [:]
        for (key, value) in environment { changes[Environment.Key(rawValue: key)!] = value }
        let result = try await Subprocess.run(
            .path(.init(executable)), arguments: .init(arguments), environment: .inherit.updating(changes),
            output: .string(limit: 64 << 20), error: .string(limit: 64 << 20))
        let status: Int32
        switch result.terminationStatus {
        case .exited(let code): status = code
        case .signaled(let signal): status = -signal
        }
        return TestCommand(status: status, out: result.standardOutput, err: result.standardError)
    }
}
