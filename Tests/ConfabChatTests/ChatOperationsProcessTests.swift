import Foundation
import Testing

/// A chat server's operations endpoints against the real binary (`confab chat serve` over a
/// `confab node`): /ready is false while the server cannot heartbeat into the ring and true once
/// it can; /metrics parses with the Prometheus text parser and its send counters move with a send.
@Suite(.serialized) struct ChatOperationsProcessTests {
    @Test func readyWaitsForTheRingAndMetricsCountSends() async throws {
        let binary = try #require(confabBinary(), "confab executable not found next to the test bundle")
        let dir = ChatTempDirectory("confab-chat-ops")
        // The ring's node is not running yet: the chat server cannot heartbeat.
        let nodePort = try ChatOperations.freePort()
        let chat = try ChatOperations.launch(
            binary,
            [
                "chat", "serve", "--port", "0", "--nodes", "127.0.0.1:\(nodePort)", "--server-id", "ops1",
                "--secret-file", "\(dir.path)/secret", "--password-rounds", "1000", "--heartbeat-ttl", "3",
                "--login-rate", "1000", "--login-burst", "1000", "--log-level", "warning",
            ], name: "chat", dir: dir.path)
        defer { if chat.isRunning { kill(chat.processIdentifier, SIGKILL) } }
        let port = try await ChatOperations.waitForPort(
            in: "\(dir.path)/chat.out", marker: "listening on http://127.0.0.1:", process: chat)

        #expect(try await ClusterHTTP.request(.get, "/health", port: port).status == 200)
        let early = try await ClusterHTTP.request(.get, "/ready", port: port)
        #expect(early.status == 503, "\(early.status) \(early.text)")
        #expect(early.json["ready"] as? Bool == false && early.json["heartbeating"] as? Bool == false, "\(early.text)")

        let node = try ChatOperations.launch(
            binary,
            [
                "node", "--data-dir", "\(dir.path)/node", "--listen", "127.0.0.1:\(nodePort)", "--rf", "1",
                "--log-level", "warning", "--insecure-no-cluster-secret",
            ], name: "node", dir: dir.path)
        defer { if node.isRunning { kill(node.processIdentifier, SIGKILL) } }
        try await eventuallyTrue("the chat server is ready once the ring answers", within: .seconds(45)) {
            try await ClusterHTTP.request(.get, "/ready", port: port).status == 200
        }
        let ready = try await ClusterHTTP.request(.get, "/ready", port: port)
        #expect(ready.json["servers"] as? [String] == ["ops1"], "\(ready.text)")

        let url = "http://127.0.0.1:\(port)/metrics"
        let before = try ChatPrometheusScrape(url)
        #expect(before.contentType.hasPrefix("text/plain; version=0.0.4"), "\(before.contentType)")
        func register(_ handle: String) async throws -> String {
            let r = try await ClusterHTTP.request(
                .post, "/api/register", port: port, body: ["handle": handle, "password": "password-\(handle)"])
            return try #require(r.json["token"] as? String, "register \(handle): \(r.text)")
        }
        let ann = try await register("ann")
        _ = try await register("ben")
        let direct = try await ClusterHTTP.request(
            .post, "/api/chats/direct", port: port, token: ann, body: ["with": "ben"])
        let chatId = try #require(direct.json["chatId"] as? String, "create chat: \(direct.text)")
        let sent = try await ClusterHTTP.request(
            .post, "/api/chats/\(chatId)/messages", port: port, token: ann,
            body: ["clientId": "ops-1", "text": "counted"])
        #expect(sent.status == 200, "\(sent.status) \(sent.text)")

        let after = try ChatPrometheusScrape(url)
        #expect(after.sum("confab_chat_messages_total") == before.sum("confab_chat_messages_total") + 1)
        #expect(
            after.sum("confab_chat_send_duration_seconds_count") == before.sum(
                "confab_chat_send_duration_seconds_count") + 1)
        for name in ["confab_chat_devices", "confab_chat_peer_queue_depth", "confab_chat_live_servers"] {
            #expect(after.has(name), "\(name) missing from /metrics")
        }
        #expect(after.sum("confab_chat_live_servers") == 1)
        kill(chat.processIdentifier, SIGTERM)
        kill(node.processIdentifier, SIGTERM)
    }

    /// `confab up` says it is up only once every chat server is ready and sees the others: a
    /// client that connects at once is homed where it stays (before, "Confab is up" came while
    /// the two servers had not yet seen each other, and clients were re-homed with 4021).
    @Test func upSaysItIsUpOnlyWhenEveryChatServerIsReady() async throws {
        let binary = try #require(confabBinary(), "confab executable not found next to the test bundle")
        let dir = ChatTempDirectory("confab-up-ready")
        let up = try ChatOperations.launch(
            binary,
            [
                "up", "--dir", "\(dir.path)/deploy", "--nodes", "1", "--chat-servers", "2",
                "--port", "0", "--timeout", "60",
            ], name: "up", dir: dir.path)
        defer {
            if up.isRunning { kill(up.processIdentifier, SIGINT) }
            up.waitUntilExit()
        }
        let out = "\(dir.path)/up.out"
        let deadline = ContinuousClock.now + .seconds(90)
        var text = ""
        while ContinuousClock.now < deadline, up.isRunning {
            text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if text.contains("Press Ctrl-C") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let err = (try? String(contentsOfFile: "\(dir.path)/up.err", encoding: .utf8)) ?? ""
        try #require(text.contains("Confab is up"), "no 'Confab is up': \(err.suffix(2000))")
        #expect(err.contains("waiting for 2 chat servers to be ready"), "\(err.suffix(1000))")
        // Asked at once, as a client written from the docs would.
        let ports = text.split(separator: "\n").filter { $0.hasPrefix("Open ") || $0.hasPrefix("Other chat servers:") }
            .flatMap { line in line.split(separator: " ").filter { $0.hasPrefix("http://127.0.0.1:") } }
            .compactMap { Int($0.split(separator: ":").last ?? "") }
        #expect(ports.count == 2, "\(text)")
        for port in ports {
            let health = try await ClusterHTTP.request(.get, "/api/health", port: port)
            #expect(health.json["servers"] as? Int == 2, "chat server on \(port) sees \(health.text)")
            let ready = try await ClusterHTTP.request(.get, "/ready", port: port)
            #expect(ready.status == 200 && ready.json["servers"] as? [String] == ["chat1", "chat2"], "\(ready.text)")
        }
    }
}

enum ChatOperations {
    static func launch(_ binary: String, _ arguments: [String], name: String, dir: String) throws -> Process {
        let out = "\(dir)/\(name).out"
        let err = "\(dir)/\(name).err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        return process
    }

    static func waitForPort(in path: String, marker: String, process: Process) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, process.isRunning {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if let r = text.range(of: marker), let port = Int(text[r.upperBound...].prefix { $0.isNumber }) {
                return port
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("no \"\(marker)\" line in \(path)")
    }

    /// A loopback port nobody listens on now (bound to port 0 and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw TestFailure("bind failed") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// One scrape of a /metrics URL parsed by Python's prometheus_client (tools/prom_scrape.py).
struct ChatPrometheusScrape {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let samples: [Sample]
    let contentType: String

    init(_ url: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/prom_scrape.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, url]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = object["samples"] as? [[String: Any]]
        else {
            throw TestFailure("prom_scrape.py \(url) failed (\(process.terminationStatus)): \(errors)")
        }
        contentType = object["content_type"] as? String ?? ""
        samples = list.map {
            Sample(
                name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) {
            $0 + $1.value
        }
    }

    func has(_ name: String) -> Bool { samples.contains { $0.name == name } }
}
