import ConfabEngine
import Foundation
import Testing

@testable import ConfabChat

/// Every kind of bad input the issue names, against real `confab chat serve` processes over a
/// 3-node ring: each gets a clear error or close, the server stays up, and what was
/// acknowledged before is still there afterwards.
@Suite(.serialized) struct ChatBadInputProcessTests {
    @Test func badInputGetsAClearAnswerAndLosesNothing() async throws {
        // A budget of 10 sends, refilled at 1 a second: the flood below outruns it however fast or
        // slow the machine is (it needs over 190 s to get through 200 sends otherwise).
        let cluster = try await ChatClusterProcesses.start(
            servers: ["bad1"], serverArguments: ["--send-rate", "1", "--send-burst", "10"])
        do {
            try await run(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func run(_ cluster: ChatClusterProcesses) async throws {
        let port = cluster.port("bad1")
        let ann = try await cluster.register("ann")
        let ben = try await cluster.register("ben")
        _ = try await cluster.register("cat")
        let direct = try await ClusterHTTP.request(
            .post, "/api/chats/direct", port: port, token: ann, body: ["with": "ben"])
        let chatId = try #require(direct.json["chatId"] as? String, "create chat: \(direct.text)")
        let privateChat = try await ClusterHTTP.request(
            .post, "/api/chats/direct", port: port, token: ben, body: ["with": "cat"])
        let privateId = try #require(privateChat.json["chatId"] as? String)
        let flood = try await ClusterHTTP.request(
            .post, "/api/chats/direct", port: port, token: ann, body: ["with": "cat"])
        let floodId = try #require(flood.json["chatId"] as? String)

        let (ws, _) = try await cluster.connect("ann", token: ann)
        try ws.send(["type": "send", "chatId": chatId, "clientId": "before-1", "text": "acknowledged before the abuse"])
        let ack = try await ws.next("ack")
        #expect(ack["clientId"] as? String == "before-1")
        // A retry with the same client id: the same message, acknowledged as a duplicate, stored once.
        try ws.send(["type": "send", "chatId": chatId, "clientId": "before-1", "text": "acknowledged before the abuse"])
        let retry = try await ws.next("ack") { $0["duplicate"] as? Bool == true }
        #expect(retry["messageId"] as? String == ack["messageId"] as? String)
        // The same client id with other text: refused, the stored message untouched.
        try ws.send(["type": "send", "chatId": chatId, "clientId": "before-1", "text": "a silent rewrite"])
        let reused = try await ws.next("error")
        #expect(reused["code"] as? String == "client_id_reused" && reused["ref"] as? String == "before-1", "\(reused)")

        // The longest valid message in its largest JSON form — 100,000 scalars each escaped as a
        // surrogate pair (12 bytes) — fits a WebSocket frame and an HTTP body.
        let escaped = String(repeating: #"\ud83d\ude00"#, count: 100_000)
        ws.sendRaw(#"{"type":"send","chatId":""# + chatId + #"","clientId":"longest-ws","text":""# + escaped + #""}"#)
        let longAck = try await ws.next("ack", timeout: .seconds(30))
        #expect(longAck["clientId"] as? String == "longest-ws", "\(longAck)")
        let longHTTP = try await ClusterHTTP.request(
            .post, "/api/chats/\(chatId)/messages", port: port, token: ann,
            rawBody: #"{"clientId":"longest-http","text":""# + escaped + #""}"#)
        #expect(longHTTP.status == 200, "\(longHTTP.status) \(longHTTP.text.prefix(300))")

        // Malformed and unknown frames.
        ws.sendRaw("{not json")
        #expect(try await ws.next("error")["code"] as? String == "bad_frame")
        ws.sendRaw(#"{"type":"teleport"}"#)
        #expect(try await ws.next("error")["code"] as? String == "unknown_type")
        // A chat ann is not in, and one that does not exist.
        try ws.send(["type": "send", "chatId": privateId, "clientId": "sneak", "text": "let me in"])
        let refused = try await ws.next("error")
        #expect(refused["code"] as? String == "not_a_member" && refused["ref"] as? String == "sneak")
        try ws.send(["type": "send", "chatId": "987654321", "clientId": "void", "text": "anyone?"])
        #expect(try await ws.next("error")["code"] as? String == "not_a_member")
        // Too long: refused, nothing stored.
        try ws.send([
            "type": "send", "chatId": chatId, "clientId": "long", "text": String(repeating: "y", count: 100_001),
        ])
        let tooLong = try await ws.next("error")
        #expect(tooLong["code"] as? String == "message_too_long" && tooLong["ref"] as? String == "long")
        // A flood: the per-user budget (1/s, burst 10) refuses the excess; nothing refused is stored.
        for i in 0..<200 {
            try ws.send(["type": "send", "chatId": floodId, "clientId": "flood-\(i)", "text": "flood \(i)"])
        }
        let limited = try await ws.next("error", timeout: .seconds(30)) { $0["code"] as? String == "rate_limited" }
        let limitedRef = try #require(limited["ref"] as? String)

        // An oversized frame (over 2 MiB) closes that socket with 1009; the server stays up.
        ws.sendRaw(#"{"type":"send","text":""# + String(repeating: "x", count: 2200 * 1024) + #""}"#)
        #expect(try await ws.closeCode(timeout: .seconds(20)) == 1009)

        // Bad and expired tokens: error frame, close 4001; HTTP 401.
        let bad = try await RawWebSocketProbe.open(port: port, path: "/ws?token=forged.token")
        #expect(bad.firstJSON?["code"] as? String == "bad_token" && bad.closeCode == 4001, "\(bad)")
        let secret = try String(contentsOfFile: "\(cluster.dir.path)/chat-secret", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let past = ManualClock(micros: SystemClock().nowMicros() - 48 * 3600 * 1_000_000)
        let expired = TokenSigner(secret: Array(secret.utf8), clock: past).issue(
            userId: "ann", registeredAt: 1, generation: 0
        ).token
        let old = try await RawWebSocketProbe.open(port: port, path: "/ws?token=\(expired)")
        #expect(old.firstJSON?["code"] as? String == "token_expired" && old.closeCode == 4001, "\(old)")
        #expect(try await ClusterHTTP.request(.get, "/api/chats", port: port, token: "forged.token").status == 401)

        // Still up, and everything acknowledged is there; nothing refused was stored.
        let (again, _) = try await cluster.connect("ann", token: ann)
        try again.send(["type": "ping"])
        _ = try await again.next("pong")
        let history = try await ClusterHTTP.request(
            .get, "/api/chats/\(chatId)/messages?limit=200", port: port, token: ben)
        let texts = (history.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
        #expect(texts.filter { $0 == "acknowledged before the abuse" }.count == 1)
        #expect(!texts.contains { $0.hasPrefix("yyyy") })
        #expect(!texts.contains("a silent rewrite"))
        #expect(
            texts.filter { $0.unicodeScalars.count == 100_000 && $0.unicodeScalars.allSatisfy { $0 == "😀" } }.count == 2
        )
        #expect(!texts.contains("let me in") && !texts.contains("anyone?"))
        let floodPage = try await ClusterHTTP.request(
            .get, "/api/chats/\(floodId)/messages?limit=200", port: port, token: ann)
        let floodTexts = (floodPage.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
        let refusedFlood = "flood " + limitedRef.dropFirst("flood-".count)
        #expect(!floodTexts.isEmpty && floodTexts.count < 200, "\(floodTexts.count) of 200 flood messages stored")
        #expect(!floodTexts.contains(refusedFlood), "the rate-limited send \(limitedRef) was stored")
        await again.close()
    }
}
