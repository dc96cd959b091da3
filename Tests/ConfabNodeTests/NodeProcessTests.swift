import Foundation
import Testing

/// A `confab node` process with its output in files; killed on deinit if still running.
final class NodeProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    private(set) var port = 0

    init(
        binary: String, dataDir: String, logDir: String, tag: String, listen: String = "127.0.0.1:0",
        arguments: [String] = []
    ) throws {
        stdoutPath = "\(logDir)/\(tag).out"
        stderrPath = "\(logDir)/\(tag).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "node", "--data-dir", dataDir, "--listen", listen, "--log-level", "warning",
                "--insecure-no-cluster-secret",
            ] + arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    /// Waits for the "listening on 127.0.0.1:PORT" line.
    func waitUntilListening(timeout: TimeInterval = 20) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on 127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits) {
                    port = p
                    return p
                }
            }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        let err = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        throw ProcessTestError("node did not start listening: \(err)")
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for exit; returns the exit status (or -signal when killed by a signal).
    func waitForExit(timeout: TimeInterval = 20) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else { throw ProcessTestError("node did not exit within \(timeout) s") }
            usleep(20_000)
        }
        return process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

struct ProcessTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs `confab ARGS` to completion; returns (status, stdout, stderr).
func runConfab(_ binary: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

@Suite(.serialized) struct NodeProcessTests {
    @Test func postHistorySigtermAndSigkillRestart() throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-node-proc")
        let data = "\(dir.path)/data"

        var node = try NodeProcess(
            binary: binary, dataDir: data, logDir: dir.path, tag: "run1", arguments: ["--rf", "1"])
        var port = try node.waitUntilListening()
        var ids: [String] = []
        for (i, text) in ["hello", "how are you?", "fine, thanks"].enumerated() {
            let r = try runConfab(
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
        let table = try runConfab(binary, ["history", "4242", "--node", "127.0.0.1:\(port)"])
        #expect(table.status == 0)
        let lines = table.out.split(separator: "\n")
        #expect(lines.first?.hasPrefix("TIME (UTC)") == true)
        #expect(lines.count == 5)
        #expect(lines[1].hasSuffix("fine, thanks") && lines[3].hasSuffix("hello"))

        func jsonHistory(_ port: Int, consistency: String = "quorum") throws -> [[String: Any]] {
            let r = try runConfab(
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
        var rows = try jsonHistory(port)
        #expect(rows.compactMap { $0["message_id"] as? String } == ids.reversed())
        #expect(rows.first?["sender"] as? String == "alice" && rows.first?["chat_id"] as? Int == 4242)

        // SIGTERM: graceful, exit 0, data still there after a restart.
        node.signal(SIGTERM)
        #expect(try node.waitForExit() == 0)
        node = try NodeProcess(binary: binary, dataDir: data, logDir: dir.path, tag: "run2", arguments: ["--rf", "1"])
        port = try node.waitUntilListening()
        rows = try jsonHistory(port, consistency: "all")
        #expect(rows.count == 3)

        // SIGKILL right after acknowledged posts: nothing acknowledged is lost.
        for i in 0..<5 {
            let r = try runConfab(
                binary,
                [
                    "post", "4242", "--sender", "carol", "--text", "before kill \(i)",
                    "--node", "127.0.0.1:\(port)",
                ])
            #expect(r.status == 0)
            ids.append(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        node.signal(SIGKILL)
        #expect(try node.waitForExit() == -SIGKILL)
        node = try NodeProcess(binary: binary, dataDir: data, logDir: dir.path, tag: "run3", arguments: ["--rf", "1"])
        port = try node.waitUntilListening()
        rows = try jsonHistory(port, consistency: "one")
        #expect(Set(rows.compactMap { $0["message_id"] as? String }) == Set(ids))

        node.signal(SIGINT)
        #expect(try node.waitForExit() == 0)

        // With the node gone, the CLI says so.
        let down = try runConfab(binary, ["history", "4242", "--node", "127.0.0.1:\(port)"])
        #expect(down.status != 0)
        #expect(down.err.contains("no node reachable at 127.0.0.1:\(port); is `confab node` running?"))
    }

    @Test func badFlagsAreExplained() throws {
        let binary = try #require(confabExecutablePath())
        let r = try runConfab(binary, ["node", "--listen", "127.0.0.1:7400"])
        #expect(r.status != 0)
        #expect(r.err.contains("no data directory"))
        let c = try runConfab(binary, ["post", "1", "--sender", "a", "--text", "b", "--consistency", "three"])
        #expect(c.status != 0)
        #expect(c.err.contains("unknown consistency level \"three\""))
    }
}
