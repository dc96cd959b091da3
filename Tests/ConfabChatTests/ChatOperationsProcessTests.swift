import ConfabProcess
import Foundation
import Testing

/// A chat server's operations endpoints against the real binary (`confab chat serve` over a
/// `confab node`): /ready is false while the server cannot heartbeat into the ring and true once
/// it can; /metrics parses with the Prometheus text parser and its send counters move with a send.
@Suite(.serialized) struct ChatOperationsProcessTests {
    @Test func readyWaitsForTheRingAndMetricsCountSends() async throws {
        let binary = try #require(confabBinary(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-chat-ops")
        // The ring's node is not running yet: the chat server cannot heartbeat.
        let nodePort = try LocalPorts.free()
        let chat = try TestServer(
            binary: binary,
            arguments: [
                "chat", "serve", "--port", "0", "--nodes", "127.0.0.1:\(nodePort)", "--server-id", "ops1",
                "--secret-file", "\(dir.path)/secret", "--password-rounds", "1000", "--heartbeat-ttl", "3",
                "--login-rate", "1000", "--login-burst", "1000", "--log-level", "warning",
            ], logDir: dir.path, tag: "chat")
        let port = try await chat.port(after: "listening on http://127.0.0.1:")

        #expect(try await ClusterHTTP.request(.get, "/health", port: port).status == 200)
        let early = try await ClusterHTTP.request(.get, "/ready", port: port)
        #expect(early.status == 503, "\(early.status) \(early.text)")
        #expect(early.json["ready"] as? Bool == false && early.json["heartbeating"] as? Bool == false, "\(early.text)")

        let node = try TestServer(
            binary: binary,
            arguments: [
                "node", "--data-dir", "\(dir.path)/node", "--listen", "127.0.0.1:\(nodePort)", "--rf", "1",
                "--log-level", "warning", "--insecure-no-cluster-secret",
            ], logDir: dir.path, tag: "node")
        try await eventuallyTrue("the chat server is ready once the ring answers", within: .seconds(45)) {
            try await ClusterHTTP.request(.get, "/ready", port: port).status == 200
        }
        let ready = try await ClusterHTTP.request(.get, "/ready", port: port)
        #expect(ready.json["servers"] as? [String] == ["ops1"], "\(ready.text)")

        let url = "http://127.0.0.1:\(port)/metrics"
        let before = try await PrometheusScrape(url)
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

        let after = try await PrometheusScrape(url)
        #expect(after.sum("confab_chat_messages_total") == before.sum("confab_chat_messages_total") + 1)
        #expect(
            after.sum("confab_chat_send_duration_seconds_count") == before.sum(
                "confab_chat_send_duration_seconds_count") + 1)
        for name in ["confab_chat_devices", "confab_chat_peer_queue_depth", "confab_chat_live_servers"] {
            #expect(after.has(name), "\(name) missing from /metrics")
        }
        #expect(after.sum("confab_chat_live_servers") == 1)
        chat.signal(SIGTERM)
        node.signal(SIGTERM)
        #expect(try await chat.termination() == 0, "chat serve after SIGTERM: \(chat.logTail())")
        #expect(try await node.termination() == 0, "node after SIGTERM: \(node.logTail())")
    }

    /// `confab up` says it is up only once every chat server is ready and sees the others: a
    /// client that connects at once is homed where it stays (before, "Confab is up" came while
    /// the two servers had not yet seen each other, and clients were re-homed with 4021).
    @Test func upSaysItIsUpOnlyWhenEveryChatServerIsReady() async throws {
        let binary = try #require(confabBinary(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-up-ready")
        let up = try TestServer(
            binary: binary,
            arguments: [
                "up", "--dir", "\(dir.path)/deploy", "--nodes", "1", "--chat-servers", "2",
                "--port", "0", "--timeout", "60",
            ], logDir: dir.path, tag: "up", separateErrors: true)
        defer {
            // Only when the test failed before its own orderly stop below: Ctrl-C, so `up`
            // stops the ring it started.
            if up.isRunning {
                up.signal(SIGINT)
                _ = try? up.waitForTermination(timeout: .seconds(60))
            }
        }
        _ = try? await up.process.line(containing: "Press Ctrl-C", timeout: .seconds(90), what: "confab up")
        let text = (try? String(contentsOfFile: up.logPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: up.errorLogPath, encoding: .utf8)) ?? ""
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
        // Ctrl-C: the chat servers, then the ring, stop in order and `up` exits 0.
        up.signal(SIGINT)
        #expect(try await up.termination(timeout: .seconds(60)) == 0, "confab up after SIGINT: \(up.logTail())")
    }
}
