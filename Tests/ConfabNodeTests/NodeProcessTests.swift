import Foundation
import Testing

/// A `confab node` process (ConfabProcess's launcher, through `TestServer`), its output in
/// `<logDir>/<tag>.log` and `<tag>.err`; killed on deinit if still running.
final class NodeProcess {
    let server: TestServer
    var stdoutPath: String { server.logPath }
    var stderrPath: String { server.errorLogPath }
    private(set) var port = 0

    init(
        binary: String, dataDir: String, logDir: String, tag: String, listen: String = "127.0.0.1:0",
        arguments: [String] = []
    ) throws {
        server = try TestServer(
            binary: binary,
            arguments: [
                "node", "--data-dir", dataDir, "--listen", listen, "--log-level", "warning",
                "--insecure-no-cluster-secret",
            ] + arguments, logDir: logDir, tag: tag, separateErrors: true)
    }

    /// Waits for the "listening on 127.0.0.1:PORT" line (off the cooperative pool).
    func waitUntilListening(timeout: TimeInterval = 20) async throws -> Int {
        port = try await server.port(after: "listening on 127.0.0.1:", timeout: .milliseconds(Int(timeout * 1000)))
        return port
    }

    func signal(_ sig: Int32) { server.signal(sig) }

    /// Waits for exit; returns the exit status (or -signal when killed by a signal).
    func waitForExit(timeout: TimeInterval = 20) async throws -> Int32 {
        try await server.termination(timeout: .milliseconds(Int(timeout * 1000)))
    }
}

/// Runs `confab ARGS` to completion (`TestCommand`: swift-subprocess, off the cooperative pool).
func runConfab(_ binary: String, _ args: [String]) async throws -> TestCommand {
    try await TestCommand.run(binary, args)
}

@Suite(.serialized) struct NodeProcessTests {
    @Test func postHistorySigtermAndSigkillRestart() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-node-proc")
        let data = "\(dir.path)/data"

        var node = try NodeProcess(
            binary: binary, dataDir: data, logDir: dir.path, tag: "run1", arguments: ["--rf", "1"])
        var port = try await node.waitUntilListening()
        var ids: [String] = []
        for (i, text) in ["hello", "how are you?", "fine, thanks"].enumerated() {
            let r = try await runConfab(
                binary,
                [
                    "post", "4242", "--sender", i % 2 == 0 ? "alice" : "bob", "--text", text,
                    "--node", "127.0.0.1:\(port)",
                ])
            #expect(r.status == 0, "post failed: \(r.err)")
            let id = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(UUID(uuidString: id) != nil, "post printed \(r.out)")
            ids.append(id)
        }
        let table = try await runConfab(binary, ["history", "4242", "--node", "127.0.0.1:\(port)"])
        #expect(table.status == 0)
        let lines = table.out.split(separator: "\n")
        #expect(lines.first?.hasPrefix("TIME (UTC)") == true)
        #expect(lines.count == 5)
        #expect(lines[1].hasSuffix("fine, thanks") && lines[3].hasSuffix("hello"))

        func jsonHistory(_ port: Int, consistency: String = "quorum") async throws -> [[String: Any]] {
            let r = try await runConfab(
                binary,
                [
                    "history", "4242", "--json", "--limit", "100", "--consistency", consistency,
                    "--node", "127.0.0.1:\(port)",
                ])
            #expect(r.status == 0, "history failed: \(r.err)")
            return try r.out.split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        var rows = try await jsonHistory(port)
        #expect(rows.compactMap { $0["message_id"] as? String } == ids.reversed())
        #expect(rows.first?["sender"] as? String == "alice" && rows.first?["chat_id"] as? Int == 4242)

        // SIGTERM: graceful, exit 0, data still there after a restart.
        node.signal(SIGTERM)
        #expect(try await node.waitForExit() == 0)
        node = try NodeProcess(binary: binary, dataDir: data, logDir: dir.path, tag: "run2", arguments: ["--rf", "1"])
        port = try await node.waitUntilListening()
        rows = try await jsonHistory(port, consistency: "all")
        #expect(rows.count == 3)

        // SIGKILL right after acknowledged posts: nothing acknowledged is lost.
        for i in 0..<5 {
            let r = try await runConfab(
                binary,
                [
                    "post", "4242", "--sender", "carol", "--text", "before kill \(i)",
                    "--node", "127.0.0.1:\(port)",
                ])
            #expect(r.status == 0)
            ids.append(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        node.signal(SIGKILL)
        #expect(try await node.waitForExit() == -SIGKILL)
        node = try NodeProcess(binary: binary, dataDir: data, logDir: dir.path, tag: "run3", arguments: ["--rf", "1"])
        port = try await node.waitUntilListening()
        rows = try await jsonHistory(port, consistency: "one")
        #expect(Set(rows.compactMap { $0["message_id"] as? String }) == Set(ids))

        node.signal(SIGINT)
        #expect(try await node.waitForExit() == 0)

        // With the node gone, the CLI says so.
        let down = try await runConfab(binary, ["history", "4242", "--node", "127.0.0.1:\(port)"])
        #expect(down.status != 0)
        #expect(down.err.contains("no node reachable at 127.0.0.1:\(port); is `confab node` running?"))
    }

    @Test func badFlagsAreExplained() async throws {
        let binary = try #require(confabExecutablePath())
        let r = try await runConfab(binary, ["node", "--listen", "127.0.0.1:7400"])
        #expect(r.status != 0)
        #expect(r.err.contains("no data directory"))
        let c = try await runConfab(binary, ["post", "1", "--sender", "a", "--text", "b", "--consistency", "three"])
        #expect(c.status != 0)
        #expect(c.err.contains("unknown consistency level \"three\""))
    }
}
