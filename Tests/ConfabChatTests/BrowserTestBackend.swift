import ConfabChat
import ConfabClient
import ConfabRing
import Foundation

/// What the browser test talks to: three real `confab node` processes (RF 3) and one or more
/// `confab chat serve` processes over them, each with its own temp directory and log files.
/// Everything is SIGKILLed on `stop()` (or deinit) so a failing test leaves nothing behind.
final class BrowserTestBackend: @unchecked Sendable {
    let directory: String
    private(set) var processes: [Process] = []
    private(set) var nodePorts: [Int] = []
    private(set) var chatURLs: [String] = []

    static func confabBinary() -> String? { confabExecutablePath() }

    init() {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("confab-browser-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Starts the ring, waits until every node sees three normal members, then starts
    /// `chatServers` chat servers over it and returns their URLs.
    func start(binary: String, chatServers: Int = 1) async throws -> [String] {
        // A fresh, empty ring: nothing to stream, so nodes join without bootstrapping (which
        // serializes joins and would make start-up slower and order-dependent).
        let fast = [
            "--rf", "3", "--vnodes", "16", "--gossip-interval-ms", "200", "--write-timeout-ms", "2000",
            "--auto-bootstrap", "false", "--insecure-no-cluster-secret",
        ]
        let first = try launch(
            binary, tag: "n1",
            [
                "node", "--data-dir", "\(directory)/n1", "--listen", "127.0.0.1:0",
                "--log-level", "warning",
            ] + fast)
        let port1 = try await waitForPort(first, tag: "n1", after: "listening on 127.0.0.1:")
        var ports = [port1]
        let seeds = ["--seeds", "127.0.0.1:\(port1)"]
        var others: [(Process, String)] = []
        for tag in ["n2", "n3"] {
            others.append(
                (
                    try launch(
                        binary, tag: tag,
                        [
                            "node", "--data-dir", "\(directory)/\(tag)", "--listen", "127.0.0.1:0",
                            "--log-level", "warning",
                        ] + fast + seeds), tag
                ))
        }
        for (process, tag) in others {
            ports.append(try await waitForPort(process, tag: tag, after: "listening on 127.0.0.1:"))
        }
        nodePorts = ports
        let addresses = ports.map { NodeAddress(host: "127.0.0.1", port: $0) }
        for address in addresses {
            var config = ConfabClient.Configuration(nodes: [address])
            config.schema = ChatSchema.registry
            config.requestTimeout = .seconds(2)
            let client = ConfabClient(configuration: config)
            defer { Task { await client.shutdown() } }
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                if let status = try? await client.status(),
                    status.nodes.count == 3, status.nodes.allSatisfy({ $0.state == "normal" && $0.isUp })
                {
                    break
                }
                guard ContinuousClock.now < deadline else {
                    let status =
                        (try? await client.status()).map { "\($0.nodes.map { "\($0.state)/\($0.isUp)" })" }
                        ?? "no status"
                    throw BrowserTestError(
                        """
                        the ring did not converge to 3 normal nodes within 30 s (\(address) sees \(status)); \
                        n1: \(log("n1").suffix(800)) n2: \(log("n2").suffix(800)) n3: \(log("n3").suffix(800))
                        """)
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let nodes = ports.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        var urls: [String] = []
        for i in 1...chatServers {
            let tag = "chat\(i == 1 ? "" : String(i))"
            let chat = try launch(
                binary, tag: tag,
                [
                    "chat", "serve", "--host", "127.0.0.1", "--port", "0", "--nodes", nodes,
                    "--server-id", "web\(i)", "--secret", "browser-test-secret",
                    "--password-rounds", "1000", "--log-level", "warning",
                ])
            let port = try await waitForPort(chat, tag: tag, after: "listening on http://127.0.0.1:")
            urls.append("http://127.0.0.1:\(port)")
        }
        chatURLs = urls
        return urls
    }

    private func launch(_ binary: String, tag: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = "\(directory)/\(tag).out"
        let err = "\(directory)/\(tag).err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        processes.append(process)
        return process
    }

    /// Reads the port after `marker` in the process's stdout or stderr (log lines go to either).
    private func waitForPort(_ process: Process, tag: String, after marker: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            for file in ["\(directory)/\(tag).out", "\(directory)/\(tag).err"] {
                let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                if let range = text.range(of: marker), let port = Int(text[range.upperBound...].prefix { $0.isNumber })
                {
                    return port
                }
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BrowserTestError(
            "\(tag) did not print \"\(marker)PORT\" (\(process.isRunning ? "timed out" : "exited")): \(log(tag))")
    }

    func log(_ tag: String) -> String {
        let out = (try? String(contentsOfFile: "\(directory)/\(tag).out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: "\(directory)/\(tag).err", encoding: .utf8)) ?? ""
        return String((out + err).suffix(3000))
    }

    func stop() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        if ProcessInfo.processInfo.environment["CONFAB_KEEP_LOGS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    deinit { stop() }
}
