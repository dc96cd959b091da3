import ConfabEngine
import Foundation
import Testing

@testable import ConfabChat

@Suite struct RealtimeCoreTests {
    @Test func aSlowDeviceIsClosedWith4008AndOthersStillGetEvents() async throws {
        let hub = ConnectionHub(clock: ManualClock())
        let slow = Outbox(deviceId: hub.makeDeviceId(), maxEvents: 10, maxBytes: 1 << 20)
        let fast = Outbox(deviceId: hub.makeDeviceId(), maxEvents: 10, maxBytes: 1 << 20)
        #expect(hub.add(slow, for: "u"))
        #expect(!hub.add(fast, for: "u"))
        for i in 0..<10 {
            hub.deliver(EncodedEvent(.pong), to: ["u"])
            if case .text = fast.take() {} else { Issue.record("event \(i) missing") }
        }
        hub.deliver(EncodedEvent(.pong), to: ["u"])  // the 11th unread event: over the bound
        #expect(slow.take() == .close(code: 4008, reason: "slow_consumer"))
        #expect(slow.count == 0)
        if case .text = fast.take() {} else { Issue.record("fast device lost an event") }
    }

    @Test func anOutboxAlsoBoundsBytes() async {
        let box = Outbox(deviceId: 1, maxEvents: 1000, maxBytes: 1000)
        for _ in 0..<3 { box.push(text: String(repeating: "x", count: 400)) }
        #expect(box.take() == .close(code: 4008, reason: "slow_consumer"))
    }

    @Test func presenceFollowsDevices() {
        let clock = ManualClock()
        let hub = ConnectionHub(clock: clock)
        let a = Outbox(deviceId: 1)
        let b = Outbox(deviceId: 2)
        #expect(hub.presence(of: "u").online == false && hub.presence(of: "u").lastSeen == nil)
        #expect(hub.add(a, for: "u"))
        #expect(!hub.add(b, for: "u"))
        #expect(hub.presence(of: "u").online)
        #expect(!hub.remove(deviceId: 1, for: "u"))
        clock.advance(seconds: 5)
        #expect(hub.remove(deviceId: 2, for: "u"))
        let p = hub.presence(of: "u")
        #expect(!p.online && p.lastSeen == clock.nowMicros() / 1000)
    }

    @Test func tokenBucketRefillsByTheInjectedClock() {
        let clock = ManualClock()
        let limiter = RateLimiter(ratePerSecond: 20, burst: 50, clock: clock)
        #expect((0..<50).allSatisfy { _ in limiter.allow("u") })
        #expect(!limiter.allow("u"))
        #expect(limiter.allow("v"))
        clock.advance(micros: 100_000)  // 2 tokens
        #expect(limiter.allow("u") && limiter.allow("u") && !limiter.allow("u"))
        clock.advance(seconds: 60)  // refills only up to the burst
        #expect((0..<50).allSatisfy { _ in limiter.allow("u") })
        #expect(!limiter.allow("u"))
    }

    @Test func framesAreParsedOrRefusedWithTheRightCode() {
        func code(_ text: String) -> ChatError.Code? {
            if case .failure(let e) = ClientFrame.parse(text) { return e.error.code }
            return nil
        }
        #expect(code("not json") == .badFrame)
        #expect(code("[1,2]") == .badFrame)
        #expect(code(#"{"chatId":"1"}"#) == .badFrame)
        #expect(code(#"{"type":"dance"}"#) == .unknownType)
        #expect(code(#"{"type":"send","chatId":"1","text":"hi"}"#) == .badFrame)
        #expect(code(#"{"type":"send","chatId":"abc","clientId":"c","text":"hi"}"#) == .badFrame)
        #expect(
            ClientFrame.parse(#"{"type":"send","chatId":"42","clientId":"c1","text":"hi"}"#)
                == .success(.send(chatId: 42, clientId: "c1", text: "hi", retry: false)))
        #expect(
            ClientFrame.parse(#"{"type":"send","chatId":"42","clientId":"c1","text":"hi","retry":true}"#)
                == .success(.send(chatId: 42, clientId: "c1", text: "hi", retry: true)))
        #expect(
            ClientFrame.parse(#"{"type":"sync","cursors":{"42":"4294967297","7":0}}"#)
                == .success(.sync(cursors: [42: 4_294_967_297, 7: 0], limit: nil)))
        #expect(code(#"{"type":"sync","cursors":{"x":"1"}}"#) == .badFrame)
        #expect(
            ClientFrame.parse(#"{"type":"read","chatId":42,"seq":"4294967297"}"#)
                == .success(.read(chatId: 42, cursor: ReadCursor(seq: 4_294_967_297))))
        #expect(ClientFrame.parse(#"{"type":"ping"}"#) == .success(.ping))
        if case .failure(let e) = ClientFrame.parse(#"{"type":"send","chatId":"1","clientId":"mine"}"#) {
            #expect(e.ref == "mine")
        }
    }

    @Test func eventsEncodeChatIdsAsStrings() throws {
        let m = MessageRecord(
            chatId: 9_007_199_254_740_993, seq: 9_007_199_254_740_995, prev: 4_294_967_297, messageId: "m", ts: 5,
            sender: "a", text: "<b>hi</b>", clientId: "c")
        let json = ServerEvent.message(m).json()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "message")
        let message = try #require(object["message"] as? [String: Any])
        #expect(message["chatId"] as? String == "9007199254740993")
        #expect(message["text"] as? String == "<b>hi</b>")
        #expect(message["seq"] as? String == "9007199254740995" && message["prev"] as? String == "4294967297")
        let back = try JSONDecoder().decode(MessageRecord.self, from: JSONSerialization.data(withJSONObject: message))
        #expect(back == m)
    }

    @Test func consistentHashingMovesOnlyTheUsersOfAServerThatLeaves() {
        let servers = ["s1": "http://a", "s2": "http://b", "s3": "http://c", "s4": "http://d"]
        let ring = ServerHashing(servers: servers)
        let users = (0..<4000).map { "user\($0)" }
        var counts: [String: Int] = [:]
        for u in users { counts[ring.owner(of: u)!, default: 0] += 1 }
        #expect(counts.count == 4)
        #expect(counts.values.allSatisfy { $0 > 600 && $0 < 1400 }, "\(counts)")
        let without = ServerHashing(servers: servers.filter { $0.key != "s3" })
        for u in users where ring.owner(of: u) != "s3" {
            #expect(without.owner(of: u) == ring.owner(of: u))
        }
        #expect(ServerHashing(servers: [:]).owner(of: "x") == nil)
    }

    @Test func pollSessionsHoldEventsUntilAcknowledgedAndExpire() async {
        let clock = ManualClock()
        let hub = ConnectionHub(clock: clock)
        let polls = PollSessions(hub: hub, clock: clock, idleMicros: 30_000_000)
        let (session, online) = polls.open(userId: "p")
        #expect(online && hub.presence(of: "p").online)
        let cursor0 = session.cursor(after: 0)
        #expect(polls.session(cursor: cursor0, userId: "p") != nil)
        #expect(polls.session(cursor: cursor0, userId: "someone_else") == nil)
        #expect(polls.session(cursor: "garbage", userId: "p") == nil)
        hub.deliver(EncodedEvent(.pong), to: ["p"])
        hub.deliver(EncodedEvent(.typing(chatId: 1, userId: "q")), to: ["p"])
        var (events, last) = session.take(after: 0, nowMicros: clock.nowMicros())
        #expect(events.count == 2 && last == 2)
        // Not acknowledged yet: asked again from the same cursor, the same events.
        (events, last) = session.take(after: 0, nowMicros: clock.nowMicros())
        #expect(events.count == 2)
        (events, last) = session.take(after: 2, nowMicros: clock.nowMicros())
        #expect(events.isEmpty && last == 2)
        clock.advance(seconds: 31)
        #expect(polls.expire() == ["p"])
        #expect(!hub.presence(of: "p").online)
        #expect(polls.session(cursor: cursor0, userId: "p") == nil)
    }

    /// Issue 12: long-poll sessions per user are bounded. A client that never sends its cursor back
    /// opens a session (buffering up to 1,000 events) on every poll; the ninth ends the one polled
    /// least recently, whose cursor then starts over (`reset`, then `sync`).
    @Test func longPollSessionsPerUserAreBounded() async {
        let clock = ManualClock()
        let hub = ConnectionHub(clock: clock)
        let polls = PollSessions(hub: hub, clock: clock, idleMicros: 30_000_000, maxPerUser: 8)
        var cursors: [String] = []
        for _ in 0..<8 {
            clock.advance(seconds: 1)
            cursors.append(polls.open(userId: "flood").0.cursor(after: 0))
        }
        _ = polls.open(userId: "calm")
        #expect(polls.count(of: "flood") == 8)
        // The first session polls again: now the second is the least recently polled.
        clock.advance(seconds: 1)
        let (first, _) = polls.session(cursor: cursors[0], userId: "flood")!
        _ = first.take(after: 0, nowMicros: clock.nowMicros())
        for _ in 0..<100 { _ = polls.open(userId: "flood") }
        #expect(polls.count(of: "flood") == 8)
        #expect(polls.count == 9)
        #expect(polls.session(cursor: cursors[1], userId: "flood") == nil)
        #expect(polls.count(of: "calm") == 1)
        // The hub holds only the live sessions: events go to 8 devices of "flood", not 108.
        #expect(hub.sinks(of: "flood").count == 8)
    }
}
