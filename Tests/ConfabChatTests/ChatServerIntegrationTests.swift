import ConfabChat
import ConfabEngine
import Foundation
import ServiceLifecycle
import Testing

@testable import ConfabChat

/// A real ring node, a chat server and WebSocket clients, all in this process, over real sockets.
@Suite(.serialized) struct ChatServerIntegrationTests {
    /// Over a 3-node RF-3 ring: every ack is a real QUORUM write.
    @Test func directAndGroupMessagesFlowInRealTime() async throws {
        let stack = try await ChatStack.start(nodes: 3)
        let alice = try await stack.register("alice")
        let bob = try await stack.register("bob")
        let carol = try await stack.register("carol")

        let aliceWS = try await stack.socket(token: alice)
        let bobPhone = try await stack.socket(token: bob)
        let bobLaptop = try await stack.socket(token: bob)
        for s in [aliceWS, bobPhone, bobLaptop] { _ = try await s.next("hello") }

        // 1:1: created over HTTP, the same chat from both sides; bob's devices hear about it.
        let direct = try await stack.http(.post, "/api/chats/direct", token: alice, body: ["with": "bob"])
        #expect(direct.status == 200)
        let directId = try #require(direct.json["chatId"] as? String)
        let again = try await stack.http(.post, "/api/chats/direct", token: bob, body: ["with": "ALICE"])
        #expect(again.json["chatId"] as? String == directId)
        _ = try await bobPhone.next("chat")

        // Alice sends over the WebSocket: ack after the QUORUM write, both of bob's devices get it.
        try aliceWS.send(["type": "send", "chatId": directId, "clientId": "a-1", "text": "hi bob <script>"])
        let ack = try await aliceWS.next("ack")
        #expect(ack["clientId"] as? String == "a-1" && ack["chatId"] as? String == directId)
        let messageId = try #require(ack["messageId"] as? String)
        for device in [bobPhone, bobLaptop] {
            let event = try await device.next("message")
            let m = try #require(event["message"] as? [String: Any])
            #expect(
                m["messageId"] as? String == messageId && m["sender"] as? String == "alice"
                    && m["text"] as? String == "hi bob <script>")
        }
        // A retry with the same client id: the same ack, stored and delivered once.
        try aliceWS.send(["type": "send", "chatId": directId, "clientId": "a-1", "text": "hi bob <script>"])
        let retry = try await aliceWS.next("ack")
        #expect(retry["messageId"] as? String == messageId && retry["duplicate"] as? Bool == true)

        // Bob answers over HTTP; alice gets it live.
        let reply = try await stack.http(
            .post, "/api/chats/\(directId)/messages", token: bob, body: ["clientId": "b-1", "text": "hello alice"])
        #expect(reply.status == 200 && reply.json["messageId"] is String)
        let live = try await aliceWS.next("message") {
            ($0["message"] as? [String: Any])?["sender"] as? String == "bob"
        }
        #expect((live["message"] as? [String: Any])?["text"] as? String == "hello alice")
        _ = try await bobPhone.next("message") { ($0["message"] as? [String: Any])?["sender"] as? String == "bob" }
        #expect(bobPhone.all("message").count == 2, "the retry was delivered again")

        // A group of three; carol (no socket) posts over HTTP, everyone connected receives it.
        let group = try await stack.http(
            .post, "/api/chats/group", token: alice, body: ["title": "Trio", "members": ["bob", "carol"]])
        #expect(group.status == 201)
        let groupId = try #require(group.json["chatId"] as? String)
        _ = try await bobLaptop.next("chat") { ($0["chat"] as? [String: Any])?["chatId"] as? String == groupId }
        let carolSend = try await stack.http(
            .post, "/api/chats/\(groupId)/messages", token: carol, body: ["clientId": "c-1", "text": "hey all"])
        #expect(carolSend.status == 200)
        for device in [aliceWS, bobPhone, bobLaptop] {
            _ = try await device.next("message") { ($0["message"] as? [String: Any])?["chatId"] as? String == groupId }
        }
        // Several quick sends arrive in the same order everywhere.
        for i in 0..<5 {
            try aliceWS.send(["type": "send", "chatId": groupId, "clientId": "burst-\(i)", "text": "n\(i)"])
        }
        for i in 0..<5 { _ = try await aliceWS.next("ack") { $0["clientId"] as? String == "burst-\(i)" } }
        func order(_ s: TestSocket) -> [String] {
            s.all("message").compactMap { ($0["message"] as? [String: Any]) }.filter {
                $0["chatId"] as? String == groupId
            }
            .compactMap { $0["text"] as? String }
        }
        for device in [aliceWS, bobPhone, bobLaptop] {
            try await eventuallyTrue("all six group messages arrive") { order(device).count >= 6 }
        }
        #expect(order(bobPhone) == ["hey all", "n0", "n1", "n2", "n3", "n4"])
        #expect(order(bobLaptop) == order(bobPhone) && order(aliceWS) == order(bobPhone))

        // Typing reaches the others, not the typist; read receipts reach everyone.
        try bobPhone.send(["type": "typing", "chatId": groupId])
        let typing = try await aliceWS.next("typing")
        #expect(typing["userId"] as? String == "bob" && typing["chatId"] as? String == groupId)
        try aliceWS.send(["type": "read", "chatId": directId, "seq": reply.json["seq"] as Any])
        let receipt = try await bobPhone.next("read")
        #expect(receipt["userId"] as? String == "alice")

        // The chat list: most recent first, unread counts.
        let list = try await stack.http(.get, "/api/chats", token: bob)
        let chats = try #require(list.json["chats"] as? [[String: Any]])
        #expect(chats.map { $0["chatId"] as? String } == [groupId, directId])
        #expect(chats.first?["unread"] as? Int == 6)
        #expect(chats.last?["unread"] as? Int == 1)  // alice's message; his own reply is not unread

        // History pages backwards; sync catches up across chats.
        let page = try await stack.http(.get, "/api/chats/\(groupId)/messages?limit=4", token: carol)
        let messages = try #require(page.json["messages"] as? [[String: Any]])
        #expect(
            messages.compactMap { $0["text"] as? String } == ["n4", "n3", "n2", "n1"]
                && page.json["more"] as? Bool == true)
        let oldest = messages.last!
        let older = try await stack.http(
            .get, "/api/chats/\(groupId)/messages?limit=4&before=\(oldest["seq"]!)", token: carol)
        #expect(
            (older.json["messages"] as? [[String: Any]])?.compactMap { $0["text"] as? String } == ["n0", "hey all"])
        let sync = try await stack.http(.post, "/api/sync", token: bob, body: ["cursors": [String: String]()])
        #expect((sync.json["messages"] as? [[String: Any]])?.count == 8 && sync.json["more"] as? Bool == false)
        #expect((sync.json["cursors"] as? [String: String])?.keys.sorted() == [groupId, directId].sorted())
        try bobPhone.send(["type": "sync", "cursors": [String: String](), "limit": 3])
        let wsSync = try await bobPhone.next("sync")
        #expect((wsSync["messages"] as? [[String: Any]])?.count == 3 && wsSync["more"] as? Bool == true)

        // Presence: alice is online, and bob sees her go offline when her socket closes.
        // Only people who share a chat with the caller are answered for (issue 12): "nobody" is
        // left out, and a stranger learns nothing of alice.
        let presence = try await stack.http(.get, "/api/presence?users=alice,nobody", token: bob)
        let states = try #require(presence.json["presence"] as? [[String: Any]])
        #expect(states.map { $0["userId"] as? String } == ["alice"] && states.map { $0["online"] as? Bool } == [true])
        let stranger = try await stack.register("stranger")
        let watched = try await stack.http(.get, "/api/presence?users=alice", token: stranger)
        #expect((watched.json["presence"] as? [[String: Any]])?.isEmpty == true, "\(watched.text)")
        await aliceWS.close()
        let offline = try await bobPhone.next("presence") {
            $0["userId"] as? String == "alice" && $0["online"] as? Bool == false
        }
        #expect(offline["lastSeen"] is Int)

        // The message is in the ring: what `confab chat history` reads.
        let stored = try await ChatHistoryReader(storage: stack.client).messages(
            chatId: Int64(directId)!, before: nil, limit: 10)
        #expect(stored.map(\.text) == ["hello alice", "hi bob <script>"])

        await bobPhone.close()
        await bobLaptop.close()
        try await stack.stop()
    }

    @Test func badInputGetsClearErrorsAndTheServerStaysUp() async throws {
        let stack = try await ChatStack.start { $0.maxFrameBytes = 64 * 1024 }
        let dan = try await stack.register("dan")
        let eve = try await stack.register("eve")
        _ = try await stack.register("fay")
        let fayChat = try await stack.http(.post, "/api/chats/direct", token: dan, body: ["with": "fay"])
        let fayChatId = try #require(fayChat.json["chatId"] as? String)

        let ws = try await stack.socket(token: eve)
        _ = try await ws.next("hello")
        ws.sendRaw("{not json")
        #expect(try await ws.next("error")["code"] as? String == "bad_frame")
        ws.sendRaw(#"{"type":"teleport"}"#)
        #expect(try await ws.next("error")["code"] as? String == "unknown_type")
        ws.sendRaw(#"{"type":"send","chatId":"1"}"#)
        #expect(try await ws.next("error")["code"] as? String == "bad_frame")
        // A chat eve is not in: refused, referring to her client id.
        try ws.send(["type": "send", "chatId": fayChatId, "clientId": "sneaky", "text": "let me in"])
        let refused = try await ws.next("error")
        #expect(refused["code"] as? String == "not_a_member" && refused["ref"] as? String == "sneaky")
        try ws.send(["type": "send", "chatId": "424242", "clientId": "nowhere", "text": "hello?"])
        // No such chat: the same answer as not a member's (issue 12: nobody learns which chats exist).
        #expect(try await ws.next("error")["code"] as? String == "not_a_member")
        try ws.send(["type": "ping"])
        _ = try await ws.next("pong")
        // An oversized frame: close 1009.
        ws.sendRaw(#"{"type":"send","text":""# + String(repeating: "x", count: 100 * 1024) + #""}"#)
        #expect(try await ws.closeCode() == 1009)

        // Bad and expired tokens: upgrade, error frame, close 4001.
        let bad = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=garbage.token")
        #expect(bad.firstJSON?["code"] as? String == "bad_token" && bad.closeCode == 4001, "\(bad)")
        let none = try await RawWebSocketProbe.open(port: stack.port, path: "/ws")
        #expect(none.closeCode == 4001, "\(none)")
        let past = ManualClock(micros: SystemClock().nowMicros() - 48 * 3600 * 1_000_000)
        let expired = TokenSigner(secret: ChatStack.secret, clock: past).issue(
            userId: "eve", registeredAt: 1, generation: 0
        ).token
        let old = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=\(expired)")
        #expect(old.firstJSON?["code"] as? String == "token_expired" && old.closeCode == 4001, "\(old)")

        // HTTP: the same codes with fitting statuses.
        let me = try await stack.http(.get, "/api/me", token: expired)
        #expect(me.status == 401 && me.errorCode == "token_expired")
        #expect(try await stack.http(.get, "/api/chats").status == 401)
        let long = try await stack.http(
            .post, "/api/chats/\(fayChatId)/messages", token: dan,
            body: ["clientId": "long", "text": String(repeating: "y", count: 100_001)])
        #expect(long.status == 413 && long.errorCode == "message_too_long")
        let history = try await stack.http(.get, "/api/chats/\(fayChatId)/messages", token: dan)
        #expect((history.json["messages"] as? [Any])?.isEmpty == true)
        let notMine = try await stack.http(
            .post, "/api/chats/\(fayChatId)/messages", token: eve, body: ["clientId": "x", "text": "x"])
        #expect(notMine.status == 403 && notMine.errorCode == "not_a_member")
        // Reading a chat must not tell "exists but not yours" from "no such chat" (issue 12):
        // otherwise anyone can test whether two people talk.
        let othersChat = try await stack.http(.get, "/api/chats/\(fayChatId)", token: eve)
        let noChat = try await stack.http(.get, "/api/chats/9000000000000000001", token: eve)
        #expect(othersChat.status == 404 && othersChat.errorCode == "not_found")
        #expect(noChat.status == 404 && noChat.errorCode == "not_found")
        let message = { (r: ChatStack.HTTPResult) in (r.json["error"] as? [String: Any])?["message"] as? String }
        #expect(message(othersChat) != nil && message(othersChat) == message(noChat))
        let malformed = try await stack.http(
            .post, "/api/chats/\(fayChatId)/messages", token: dan, rawBody: "{\"text\": 5}")
        #expect(malformed.status == 400 && malformed.errorCode == "bad_request")
        let taken = try await stack.http(.post, "/api/register", body: ["handle": "DAN", "password": "whatever123"])
        #expect(taken.status == 409 && taken.errorCode == "handle_taken")
        let wrong = try await stack.http(.post, "/api/login", body: ["handle": "dan", "password": "nope-nope"])
        #expect(wrong.status == 401 && wrong.errorCode == "bad_credentials")
        // The same answers with an Origin header, as every browser sends (issue 9, item 1: these
        // were 500 with an empty body when CORS wrapped the error middleware).
        let wrongFromPage = try await stack.http(
            .post, "/api/login", body: ["handle": "dan", "password": "nope-nope"], origin: "http://127.0.0.1:1")
        #expect(
            wrongFromPage.status == 401 && wrongFromPage.errorCode == "bad_credentials",
            "\(wrongFromPage.status) \(wrongFromPage.text)")
        // A token in the URL counts only on /ws (issue 12: it was accepted on every endpoint).
        let inURL = try await stack.http(.get, "/api/me?token=\(dan)")
        #expect(
            inURL.status == 401 && inURL.errorCode == "bad_token" && inURL.text.contains("only on /ws"),
            "\(inURL.status) \(inURL.text)")
        #expect(try await stack.http(.get, "/api/me", token: dan).status == 200)
        let unknownFromPage = try await stack.http(
            .post, "/api/chats/direct", token: dan, body: ["with": "nobody_here"], origin: "http://127.0.0.1:1")
        #expect(
            unknownFromPage.status == 404 && unknownFromPage.errorCode == "unknown_user",
            "\(unknownFromPage.status) \(unknownFromPage.text)")
        let big = try await stack.http(
            .post, "/api/chats/group", token: dan,
            body: ["title": "big", "members": (0..<100).map { "u\($0)" }])
        #expect(big.status == 422 && big.errorCode == "group_full")
        #expect(try await stack.http(.get, "/api/nothing-here", token: dan).errorCode == "not_found")

        // Still up: a fresh socket works.
        let after = try await stack.socket(token: dan)
        _ = try await after.next("hello")
        try after.send(["type": "send", "chatId": fayChatId, "clientId": "ok", "text": "still here"])
        _ = try await after.next("ack")
        await after.close()
        try await stack.stop()
    }

    /// Issue 12: a user can sign out everywhere, and a password change does the same: live
    /// WebSockets close with 4001 (`signed_out`), older tokens get 401, the caller's fresh token works.
    @Test func signOutEverywhereAndPasswordChangesEndOlderSessions() async throws {
        let stack = try await ChatStack.start()
        let token = try await stack.register("wes")
        let socket = try await stack.socket(token: token)
        _ = try await socket.next("hello", timeout: .seconds(10))
        let out = try await stack.http(.post, "/api/logout-everywhere", token: token)
        #expect(out.status == 200, "\(out.text)")
        let fresh = try #require(out.json["token"] as? String, "\(out.text)")
        #expect(try await socket.closeCode() == 4001)
        let refused = try await stack.http(.get, "/api/chats", token: token)
        #expect(refused.status == 401 && refused.errorCode == "bad_token", "\(refused.text)")
        #expect(try await stack.http(.get, "/api/chats", token: fresh).status == 200)

        let wrong = try await stack.http(
            .post, "/api/password", token: fresh, body: ["old": "not-it-at-all", "new": "password-wes-2"])
        #expect(wrong.status == 401 && wrong.errorCode == "bad_credentials", "\(wrong.text)")
        let changed = try await stack.http(
            .post, "/api/password", token: fresh, body: ["old": "password-wes", "new": "password-wes-2"])
        #expect(changed.status == 200, "\(changed.text)")
        let newest = try #require(changed.json["token"] as? String)
        #expect(try await stack.http(.get, "/api/chats", token: fresh).status == 401)
        #expect(try await stack.http(.get, "/api/chats", token: newest).status == 200)
        let oldLogin = try await stack.http(
            .post, "/api/login", body: ["handle": "wes", "password": "password-wes"])
        #expect(oldLogin.status == 401, "\(oldLogin.text)")
        try await stack.stop()
    }

    @Test func longPollingDeliversTheSameEvents() async throws {
        let stack = try await ChatStack.start()
        let gil = try await stack.register("gil")
        let hal = try await stack.register("hal")
        let chat = try await stack.http(.post, "/api/chats/direct", token: gil, body: ["with": "hal"])
        let chatId = try #require(chat.json["chatId"] as? String)

        let first = try await stack.http(.get, "/api/poll", token: hal)
        #expect(first.json["reset"] as? Bool == true)
        var cursor = try #require(first.json["cursor"] as? String)
        #expect((first.json["events"] as? [[String: Any]])?.first?["type"] as? String == "hello")
        // Online while polling.
        let presence = try await stack.http(.get, "/api/presence?users=hal", token: gil)
        #expect(((presence.json["presence"] as? [[String: Any]])?.first)?["online"] as? Bool == true)

        let pollPath = "/api/poll?cursor=\(cursor)&timeout=20"
        async let waiting = stack.http(.get, pollPath, token: hal)
        // The send must find the poll parked, so that it is the send that wakes it.
        try await eventuallyTrue("hal's poll is parked", within: .seconds(10)) {
            stack.server.polls.parkedPolls(of: "hal") == 1
        }
        let start = ContinuousClock.now
        _ = try await stack.http(
            .post, "/api/chats/\(chatId)/messages", token: gil, body: ["clientId": "p1", "text": "poll me"])
        let got = try await waiting
        #expect(ContinuousClock.now - start < .seconds(5))
        let events = try #require(got.json["events"] as? [[String: Any]])
        #expect(events.contains { ($0["message"] as? [String: Any])?["text"] as? String == "poll me" })
        cursor = try #require(got.json["cursor"] as? String)
        // Acknowledged events are not repeated; an empty poll times out with no events.
        let quiet = try await stack.http(.get, "/api/poll?cursor=\(cursor)&timeout=1", token: hal)
        #expect((quiet.json["events"] as? [Any])?.isEmpty == true && quiet.json["reset"] as? Bool == false)
        // Another user's cursor is not accepted (a new session instead).
        let stolen = try await stack.http(.get, "/api/poll?cursor=\(cursor)&timeout=1", token: gil)
        #expect(stolen.json["reset"] as? Bool == true)
        try await stack.stop()
    }

    @Test func servesTheWebClientAndRoutesUsers() async throws {
        let stack = try await ChatStack.start()
        let index = try await stack.http(.get, "/")
        #expect(index.status == 200 && index.text.lowercased().contains("<html"))
        let route = try await stack.http(.get, "/api/route?user=Somebody")
        #expect(
            route.json["server"] as? String == "http://127.0.0.1:\(stack.port)"
                && route.json["serverId"] as? String == "test-server")
        // The heartbeat row is in the ring.
        try await eventuallyTrue("heartbeat written") {
            let rows = try await stack.client.read(
                SliceQuery(table: 8, partitionKey: [0, 0, 0, 0, 0, 0, 0, 0], limit: 10), consistency: .quorum)
            return rows.rows.count == 1
        }
        try await stack.stop()
    }
}

extension ChatServerIntegrationTests {
    /// A stack and a second server, heartbeating every 200 ms, once each sees both.
    private func startTwoServersThatSeeEachOther() async throws -> (
        ChatStack, (server: ChatServer, group: ServiceGroup, task: Task<Void, any Error>, port: Int)
    ) {
        let fast: (inout ChatServerConfiguration) -> Void = {
            $0.heartbeatInterval = .milliseconds(200)
            $0.heartbeatTTLSeconds = 10
            $0.serverRefreshInterval = .milliseconds(200)
        }
        let stack = try await ChatStack.start(configure: fast)
        let b = try await stack.startAnotherServer(serverId: "server-b", configure: fast)
        for port in [stack.port, b.port] {
            try await eventuallyTrue("server on \(port) sees both servers") {
                try await stack.http(.get, "/api/health", port: port).json["servers"] as? Int == 2
            }
        }
        return (stack, b)
    }

    @Test func serversFindEachOtherThroughHeartbeatsAndAgreeOnRoutes() async throws {
        let (stack, b) = try await startTwoServersThatSeeEachOther()
        var owners: Set<String> = []
        for i in 0..<40 {
            let fromA = try await stack.http(.get, "/api/route?user=user\(i)").json
            let fromB = try await stack.http(.get, "/api/route?user=user\(i)", port: b.port).json
            #expect(fromA["serverId"] as? String == fromB["serverId"] as? String)
            #expect(fromA["server"] as? String == fromB["server"] as? String)
            if let id = fromA["serverId"] as? String { owners.insert(id) }
        }
        #expect(owners == ["test-server", "server-b"])
        // One deployment secret: a token from one server is good on the other.
        let token = try await stack.register("roamer")
        #expect(try await stack.http(.get, "/api/me", token: token, port: b.port).json["userId"] as? String == "roamer")

        // A graceful stop deletes the heartbeat row: the other server stops routing there at once
        // (well within the 10 s TTL).
        let stopped = ContinuousClock.now
        await b.group.triggerGracefulShutdown()
        try await b.task.value
        try await eventuallyTrue("server-b is gone from the route table", within: .seconds(5)) {
            try await stack.http(.get, "/api/health").json["servers"] as? Int == 1
        }
        #expect(ContinuousClock.now - stopped < .seconds(5))
        for i in 0..<10 {
            #expect(try await stack.http(.get, "/api/route?user=user\(i)").json["serverId"] as? String == "test-server")
        }
        try await stack.stop()
    }
}

extension ChatServerIntegrationTests {
    /// Issue 12: two people signing up for one handle at the same instant on two servers get one
    /// account and one `handle_taken` — sign-ups go to the handle's owner server and take turns
    /// there. Before, both could get 201 and a token, the loser's refused a second later.
    @Test func racingSignUpsOnTwoServersGetOneAccountAndOneHandleTaken() async throws {
        let (stack, b) = try await startTwoServersThatSeeEachOther()
        for i in 0..<12 {
            let handle = "racer\(i)"
            async let onA = stack.http(.post, "/api/register", body: ["handle": handle, "password": "password-a-\(i)"])
            async let onB = stack.http(
                .post, "/api/register", body: ["handle": handle, "password": "password-b-\(i)"], port: b.port)
            let (a, r) = try await (onA, onB)
            let statuses = [a.status, r.status].sorted()
            #expect(statuses == [201, 409], "\(handle): \(a.status) \(a.text) / \(r.status) \(r.text)")
            let loser = a.status == 409 ? a : r
            #expect(loser.errorCode == "handle_taken", "\(loser.text)")
            let winner = a.status == 201 ? a : r
            let token = try #require(winner.json["token"] as? String)
            for port in [stack.port, b.port] {
                #expect(
                    try await stack.http(.get, "/api/me", token: token, port: port).json["userId"] as? String == handle)
            }
        }
        await b.group.triggerGracefulShutdown()
        try await b.task.value
        try await stack.stop()
    }

    /// A device's frames are handled one at a time and in order, also past the mark where its
    /// socket stops reading until the waiting frames drain (16): 64 sends in one burst are
    /// acknowledged in the order they were sent.
    @Test func aBurstOfSendsOnOneSocketIsAcknowledgedInOrder() async throws {
        let stack = try await ChatStack.start {
            $0.sendsPerSecond = 1000
            $0.sendBurst = 1000
        }
        let a = try await stack.register("burster")
        _ = try await stack.register("burstee")
        let chat = try await stack.http(.post, "/api/chats/direct", token: a, body: ["with": "burstee"])
        let chatId = try #require(chat.json["chatId"] as? String)
        let socket = try await stack.socket(token: a)
        _ = try await socket.next("hello")
        let sent = (0..<64).map { "b\($0)" }
        for id in sent { try socket.send(["type": "send", "chatId": chatId, "clientId": id, "text": "m \(id)"]) }
        var acked: [String] = []
        for _ in sent { acked.append(try await socket.next("ack")["clientId"] as? String ?? "?") }
        #expect(acked == sent)
        await socket.close()
        try await stack.stop()
    }

    /// The server pings every socket; one that answers none of its pings is closed after two
    /// intervals, while a client that answers stays.
    @Test func aSocketThatAnswersNoPingIsClosedAndOneThatDoesStays() async throws {
        let stack = try await ChatStack.start { $0.pingIntervalSeconds = 1 }
        let token = try await stack.register("quiet")
        let answering = try await stack.socket(token: token)
        _ = try await answering.next("hello")
        let start = ContinuousClock.now
        // The raw probe reads everything and answers nothing, pings included.
        let silent = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=\(token)", timeoutSeconds: 30)
        let lasted = ContinuousClock.now - start
        #expect(silent.status == 101 && silent.firstJSON?["type"] as? String == "hello", "\(silent)")
        #expect(silent.closeCode == nil, "closed without a close frame: \(silent)")
        #expect(lasted >= .seconds(1) && lasted < .seconds(10), "closed after \(lasted)")
        // The answering client outlived it and still talks.
        try answering.send(["type": "ping"])
        _ = try await answering.next("pong")
        #expect(!answering.ended.withLockedValue { $0 })
        await answering.close()
        try await stack.stop()
    }

    /// A device that was away while large messages arrived catches up over its own socket: each
    /// sync answer stays under `Limits.maxSyncBytes`, so it fits the device's 4 MiB queue. Before,
    /// the answer held up to `limit` messages whatever their size, passed the queue's bound, and
    /// the device was closed with 4008 on every catch-up: it never got those messages.
    @Test func aDeviceCatchesUpOnLargeMessagesOverItsSocket() async throws {
        // 60 sends at once pass the default 20/s, burst 50: a refused send would never be acked.
        let stack = try await ChatStack.start {
            $0.sendsPerSecond = 10_000
            $0.sendBurst = 10_000
        }
        let away = try await stack.register("wanderer")
        let talker = try await stack.register("talker")
        let chat = try await stack.http(.post, "/api/chats/direct", token: talker, body: ["with": "wanderer"])
        let chatId = try #require(chat.json["chatId"] as? String)
        let sender = try await stack.socket(token: talker)
        _ = try await sender.next("hello")
        let count = 60  // 5.4 MB of text: past the 4 MiB a device's queue holds
        try await sender.sendAll(
            chatId: chatId, prefix: "big", count: count, text: String(repeating: "z", count: 90_000))
        await sender.close()

        let device = try await stack.socket(token: away)
        _ = try await device.next("hello")
        let (seen, pages) = try await device.syncEverything()
        #expect(seen == (0..<count).map { "big-\($0)" })
        #expect(pages >= 5, "\(pages) pages for \(count) messages of 90 KB: each holds about 1 MiB")
        #expect(!device.ended.withLockedValue { $0 }, "the device's socket closed")
        await device.close()
        try await stack.stop()
    }

    /// The chat server reads a chat's messages from the ring in slices of at most
    /// `ChatLog.rowsPerRead` rows and `ChatLog.bytesPerRead` bytes, so no ring answer passes the
    /// nodes' frame limit however large the messages: here the nodes' frame is 1 MiB and 40
    /// messages of 50,000 characters hold 2 MB. Before slices were cut in rows (23dbbec), history
    /// read a page of up to 201 rows and sync up to 501 in one read each, the nodes refused to
    /// send the answer (`tooLarge`), and neither worked for that chat again; a new owner's opening
    /// read (256 rows) failed the same way. With slices of 64 rows and no byte limit, 64 of these
    /// messages (3.2 MB) still passed the frame. A history page is cut at about 1 MiB of JSON
    /// too: before, this one was a single 2 MB answer.
    @Test func historyAndSyncOfLargeMessagesStayUnderTheRingsFrame() async throws {
        let stack = try await ChatStack.start(
            configure: {
                $0.sendsPerSecond = 10_000
                $0.sendBurst = 10_000
            },
            configureNodes: { $0.maxFrameBytes = 1 << 20 })
        let reader = try await stack.register("reader")
        let writer = try await stack.register("writer")
        let chat = try await stack.http(.post, "/api/chats/direct", token: writer, body: ["with": "reader"])
        let chatId = try #require(chat.json["chatId"] as? String)
        let sender = try await stack.socket(token: writer)
        _ = try await sender.next("hello")
        let count = 40
        try await sender.sendAll(chatId: chatId, prefix: "l", count: count, text: String(repeating: "y", count: 50_000))
        await sender.close()

        // History pages stop at about 1 MiB of JSON (`maxHistoryBytes`) with `more`; paging
        // before the oldest seq got gives every message once.
        var ids: [String] = []
        var before = ""
        var pages = 0
        for _ in 0..<20 {
            let history = try await stack.http(
                .get, "/api/chats/\(chatId)/messages?limit=200\(before)", token: reader)
            #expect(history.status == 200, "\(history.status): \(String(describing: history.json["message"]))")
            #expect(history.text.utf8.count <= (1 << 20) + 60_000, "a history page of \(history.text.utf8.count) bytes")
            let messages = history.json["messages"] as? [[String: Any]] ?? []
            ids += messages.map { $0["clientId"] as? String ?? "?" }
            pages += 1
            guard history.json["more"] as? Bool == true, let oldest = messages.last?["seq"] else { break }
            before = "&before=\(oldest)"
        }
        #expect(ids == (0..<count).reversed().map { "l-\($0)" })
        #expect(pages >= 2)

        let device = try await stack.socket(token: reader)
        _ = try await device.next("hello")
        let (seen, _) = try await device.syncEverything(maxPages: 20)
        #expect(seen == (0..<count).map { "l-\($0)" })
        await device.close()
        try await stack.stop()
    }

    /// A device that stops reading is closed with 4008 once its queue passes the bound; the
    /// sender and the server carry on, and the device gets everything back with sync.
    @Test func aSlowReaderIsClosedWith4008AndCatchesUpWithSync() async throws {
        let stack = try await ChatStack.start {
            $0.outboxMaxBytes = 256 * 1024
            $0.sendsPerSecond = 1000
            $0.sendBurst = 1000
        }
        let slow = try await stack.register("slowpoke")
        let fast = try await stack.register("speedy")
        let chat = try await stack.http(.post, "/api/chats/direct", token: fast, body: ["with": "slowpoke"])
        let chatId = try #require(chat.json["chatId"] as? String)
        let stalled = try await stack.socket(token: slow, reading: false)
        let sender = try await stack.socket(token: fast)
        _ = try await sender.next("hello")
        try await eventuallyTrue("slowpoke is connected") {
            let p = try await stack.http(.get, "/api/presence?users=slowpoke", token: fast)
            return ((p.json["presence"] as? [[String: Any]])?.first)?["online"] as? Bool == true
        }
        let text = String(repeating: "z", count: 90_000)
        let count = 160  // ~14 MB: more than the kernel's socket buffers hold
        for i in 0..<count {
            try sender.send(["type": "send", "chatId": chatId, "clientId": "big-\(i)", "text": text])
        }
        for i in 0..<count {
            do {
                _ = try await sender.next("ack", timeout: .seconds(60)) { $0["clientId"] as? String == "big-\(i)" }
            } catch {
                // Say whether the sender's own socket was closed (and how) or is open and silent.
                let ended = sender.ended.withLockedValue { $0 }
                let code = ended ? try? await sender.closeCode(timeout: .seconds(1)) : nil
                Issue.record(
                    "no ack of big-\(i); the sender's socket \(ended ? "closed with \(String(describing: code))" : "is open")"
                )
                throw error
            }
        }
        stalled.reading.withLockedValue { $0 = true }
        #expect(try await stalled.closeCode(timeout: .seconds(30)) == 4008)
        // The sender and the server carry on.
        try sender.send(["type": "send", "chatId": chatId, "clientId": "after", "text": "still flowing"])
        _ = try await sender.next("ack") { $0["clientId"] as? String == "after" }
        // Reconnected, the slow device catches up: every acknowledged message is there.
        var cursors: [String: String] = [:]
        var seen: Set<String> = []
        while true {
            let page = try await stack.http(.post, "/api/sync", token: slow, body: ["cursors": cursors, "limit": 100])
            for m in page.json["messages"] as? [[String: Any]] ?? [] {
                if let id = m["clientId"] as? String { seen.insert(id) }
            }
            cursors = page.json["cursors"] as? [String: String] ?? cursors
            if page.json["more"] as? Bool != true { break }
        }
        #expect(seen.count == count + 1)
        await sender.close()
        try await stack.stop()
    }
}

extension ChatServerIntegrationTests {
    /// Send → ack and send → receipt on another user's device over a 3-node RF-3 ring, one
    /// message at a time; prints the distribution (a measurement for the report, not a gate).
    /// Issue 12: refused upgrades count against the connection cap. A refusal lingers up to 2 s
    /// for the client's close; past `maxConnections + maxRefusing` open sockets a new upgrade is
    /// closed at once, whatever its token — before, a flood of bad tokens held a descriptor each.
    @Test func upgradesPastTheCapAndTheRefusalAllowanceCloseAtOnce() async throws {
        let stack = try await ChatStack.start {
            $0.maxConnections = 1
            $0.maxRefusing = 0
        }
        let ida = try await stack.register("ida")
        let held = try await stack.socket(token: ida)
        _ = try await held.next("hello")
        let flood = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=forged.token")
        #expect(flood.closeCode == 1013 && flood.texts.isEmpty, "\(flood)")
        await held.close()
        try await eventuallyTrue("below the cap, a bad token gets its reason again") {
            let bad = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=forged.token")
            return bad.firstJSON?["code"] as? String == "bad_token" && bad.closeCode == 4001
        }
        try await stack.stop()
    }

    /// Peer links (issue 12): `/internal/ws` is not on the public port, and its handshake is a
    /// challenge per connection: a hello recorded on one connection, replayed on the next, is
    /// refused with 4001 and the frames sent after it reach nobody. A real handshake's frame
    /// does reach the device, so the check can fail.
    @Test func peerLinksAreOffThePublicPortAndAReplayedHandshakeIsRefused() async throws {
        let stack = try await ChatStack.start()
        let ana = try await stack.register("ana")
        let device = try await stack.socket(token: ana)
        _ = try await device.next("hello")
        let peerPort = try await stack.server.peerListeningPort()
        #expect(peerPort != stack.port)
        let onPublic = try await RawWebSocketProbe.open(port: stack.port, path: "/internal/ws")
        #expect(onPublic.status != 101, "the public port upgraded a peer link: \(onPublic)")

        let handshake = PeerHandshake(secret: ChatStack.secret)
        let url = "ws://127.0.0.1:\(peerPort)/internal/ws"
        let honest = TestSocket(url: url)
        let challenge = try #require(PeerHandshake.parseChallenge(try await honest.nextText()))
        let senderNonce = PeerHandshake.nonce()
        let hello = handshake.hello(from: "peer-x", receiverNonce: challenge, senderNonce: senderNonce)
        honest.sendRaw(hello)
        let welcome = try await honest.nextText()
        #expect(
            handshake.verifyWelcome(welcome, receiverNonce: challenge, senderNonce: senderNonce) == "test-server",
            "\(welcome)")
        honest.sendRaw("deliver probe ana\n{\"n\":1,\"type\":\"probe\"}")
        _ = try await device.next("probe") { $0["n"] as? Int == 1 }
        await honest.close()

        let replay = TestSocket(url: url)
        let second = try #require(PeerHandshake.parseChallenge(try await replay.nextText()))
        #expect(second != challenge)
        replay.sendRaw(hello)
        replay.sendRaw("deliver probe ana\n{\"n\":2,\"type\":\"probe\"}")
        #expect(try await replay.closeCode() == 4001)
        #expect(replay.texts(from: 1).isEmpty, "the replay got an answer: \(replay.texts(from: 1))")

        // Frames of one link reach a device in order; n = 3 from a fresh honest link comes after
        // anything the replay could have delivered.
        let later = TestSocket(url: url)
        let third = try #require(PeerHandshake.parseChallenge(try await later.nextText()))
        later.sendRaw(handshake.hello(from: "peer-x", receiverNonce: third, senderNonce: PeerHandshake.nonce()))
        _ = try await later.nextText()
        later.sendRaw("deliver probe ana\n{\"n\":3,\"type\":\"probe\"}")
        _ = try await device.next("probe") { $0["n"] as? Int == 3 }
        #expect(!device.all("probe").contains { $0["n"] as? Int == 2 }, "the replayed link delivered a frame")
        await later.close()
        await device.close()
        try await stack.stop()
    }

    /// The block endpoints over HTTP (issue 12): a blocked user's add answers 403 `blocked`.
    @Test func blocksOverHTTP() async throws {
        let stack = try await ChatStack.start()
        let bea = try await stack.register("bea")
        let ben = try await stack.register("ben")
        let group = try await stack.http(.post, "/api/chats/group", token: ben, body: ["title": "g", "members": []])
        let chatId = try #require(group.json["chatId"] as? String, "\(group.text)")
        #expect(try await stack.http(.post, "/api/blocks", token: bea, body: ["userId": "ben"]).status == 200)
        #expect(try await stack.http(.get, "/api/blocks", token: bea).json["blocked"] as? [String] == ["ben"])
        let add = try await stack.http(.post, "/api/chats/\(chatId)/members", token: ben, body: ["userId": "bea"])
        #expect(add.status == 403 && add.errorCode == "blocked", "\(add.text)")
        #expect(try await stack.http(.delete, "/api/blocks/ben", token: bea).status == 200)
        #expect(
            try await stack.http(.post, "/api/chats/\(chatId)/members", token: ben, body: ["userId": "bea"]).status
                == 200)
        try await stack.stop()
    }

    @Test func aFullServerRefusesNewSocketsWithServerFullAndRecovers() async throws {
        let stack = try await ChatStack.start { $0.maxConnections = 1 }
        let gus = try await stack.register("gus")
        let first = try await stack.socket(token: gus)
        _ = try await first.next("hello")
        let second = try await RawWebSocketProbe.open(port: stack.port, path: "/ws?token=\(gus)")
        #expect(second.firstJSON?["code"] as? String == "server_full" && second.closeCode == 1013, "\(second)")
        // Still serving the one it holds, and a freed slot is usable again.
        try first.send(["type": "ping"])
        _ = try await first.next("pong")
        await first.close()
        try await eventuallyTrue("a slot is free again") {
            let third = try await stack.socket(token: gus)
            defer { Task { await third.close() } }
            return (try? await third.next("hello", timeout: .seconds(2))) != nil
        }
        try await stack.stop()
    }

    @Test func measuresSendToReceiptLatency() async throws {
        let stack = try await ChatStack.start(nodes: 3) {
            $0.sendsPerSecond = 10_000
            $0.sendBurst = 10_000
        }
        let a = try await stack.register("lat_a")
        let b = try await stack.register("lat_b")
        let chat = try await stack.http(.post, "/api/chats/direct", token: a, body: ["with": "lat_b"])
        let chatId = try #require(chat.json["chatId"] as? String)
        let sa = try await stack.socket(token: a)
        let sb = try await stack.socket(token: b)
        _ = try await sa.next("hello")
        _ = try await sb.next("hello")
        var acks: [Duration] = []
        var receipts: [Duration] = []
        let n = 300
        for i in 0..<n {
            let start = ContinuousClock.now
            try sa.send(["type": "send", "chatId": chatId, "clientId": "l\(i)", "text": "message \(i)"])
            _ = try await sa.next("ack") { $0["clientId"] as? String == "l\(i)" }
            acks.append(ContinuousClock.now - start)
            _ = try await sb.next("message") { ($0["message"] as? [String: Any])?["clientId"] as? String == "l\(i)" }
            receipts.append(ContinuousClock.now - start)
            _ = try await sa.next("message")  // its own copy; consumed so the test client's scans stay short
        }
        func ms(_ d: [Duration], _ q: Double) -> String {
            let sorted = d.sorted()
            let v = sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
            return String(format: "%.2f", Double(v.components.attoseconds) / 1e15 + Double(v.components.seconds) * 1000)
        }
        print(
            "chat latency over a 3-node RF-3 ring (\(n) sequential WebSocket sends; the test client polls every 1 ms): "
                + "ack p50 \(ms(acks, 0.5)) ms p99 \(ms(acks, 0.99)) ms; receipt p50 \(ms(receipts, 0.5)) ms p99 \(ms(receipts, 0.99)) ms"
        )
        var writes: [Duration] = []
        var reads: [Duration] = []
        for i in 0..<100 {
            let start = ContinuousClock.now
            try await stack.client.post(chatId: 99, sender: "bench", text: "raw \(i)")
            writes.append(ContinuousClock.now - start)
            let r = ContinuousClock.now
            _ = try await stack.client.history(chatId: 99, limit: 1)
            reads.append(ContinuousClock.now - r)
        }
        var direct: [Duration] = []
        for i in 0..<100 {
            let start = ContinuousClock.now
            _ = try await stack.server.chats.send(
                "lat_a", chatId: Int64(chatId)!, clientId: "d\(i)", text: "direct \(i)")
            direct.append(ContinuousClock.now - start)
        }
        print("ChatService.send called directly: p50 \(ms(direct, 0.5)) ms p99 \(ms(direct, 0.99)) ms")
        print(
            "same ring, one ConfabClient QUORUM write: p50 \(ms(writes, 0.5)) ms p99 \(ms(writes, 0.99)) ms; QUORUM read p50 \(ms(reads, 0.5)) ms"
        )
        // Every message reached the other user once, in the order sent (one sender, one chat).
        let got = sb.all("message").compactMap { ($0["message"] as? [String: Any])?["clientId"] as? String }.filter {
            $0.hasPrefix("l")
        }
        #expect(got == (0..<n).map { "l\($0)" })
        await sa.close()
        await sb.close()
        try await stack.stop()
    }
}

func eventuallyTrue(_ what: String, within timeout: Duration = .seconds(15), _ condition: () async throws -> Bool)
    async throws
{
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("timed out after \(timeout): \(what)")

}

extension ChatServerIntegrationTests {
    /// A frame over the limit is refused with close 1009 that the device receives. NIO's own
    /// error handler closed the socket right after its close frame with the frame's payload still
    /// unread, so the kernel reset the connection and the reset could destroy the close frame
    /// (a CI failure of `ChatBadInputProcessTests`: no 1009). The server now keeps reading (and
    /// dropping) until the device answers its close.
    @Test func anOversizedFrameIsClosedWith1009ThatArrives() async throws {
        let stack = try await ChatStack.start(nodes: 1)
        let token = try await stack.register("olga")
        for _ in 0..<3 {
            let answer = try await RawWebSocketProbe.oversizedFrame(
                port: stack.port, path: "/ws?token=\(token)", declaredLength: 16 << 20, sentBytes: 4 << 20)
            #expect(answer.closeCode == 1009, "\(answer)")
        }
        try await stack.stop()
    }
}

extension ChatServerIntegrationTests {
    /// Frames waiting for a peer server go as one `batch` once the peer said it reads batches,
    /// and arrive as if sent one by one: every one, once, in order.
    @Test func framesWaitingForAPeerGoAsOneBatchAndArriveOnceInOrder() async throws {
        let batches = try await deliverABurstToTheOtherServer(receiverReadsBatches: true)
        #expect(batches > 0, "the burst never went as a batch")
    }

    /// A server from before batches (`peerLinkBatches = false`: it neither says it reads batches
    /// nor reads them) is never sent one; were it sent one, it would drop the frames inside and
    /// the burst would not arrive.
    @Test func aServerThatDoesNotReadBatchesIsSentFramesOneByOne() async throws {
        let batches = try await deliverABurstToTheOtherServer(receiverReadsBatches: false)
        #expect(batches == 0)
    }

    /// Server A forwards 300 events (and an end marker) to a device on server B through A's peer
    /// link, queued all at once; returns the batch frames the link wrote.
    private func deliverABurstToTheOtherServer(receiverReadsBatches: Bool) async throws -> Int {
        let fast: (inout ChatServerConfiguration) -> Void = {
            $0.heartbeatInterval = .milliseconds(200)
            $0.heartbeatTTLSeconds = 10
            $0.serverRefreshInterval = .milliseconds(200)
        }
        let stack = try await ChatStack.start(configure: fast)
        let b = try await stack.startAnotherServer(serverId: "server-b") {
            fast(&$0)
            $0.peerLinkBatches = receiverReadsBatches
        }
        for port in [stack.port, b.port] {
            try await eventuallyTrue("server on \(port) sees both servers") {
                try await stack.http(.get, "/api/health", port: port).json["servers"] as? Int == 2
            }
        }
        var owned: String?
        for i in 0..<200 where owned == nil {
            let handle = "batchee\(i)"
            if try await stack.http(.get, "/api/route?user=\(handle)").json["serverId"] as? String == "server-b" {
                owned = handle
            }
        }
        let user = try #require(owned, "no handle of 200 is routed to server-b")
        let device = try await stack.socket(token: try await stack.register(user), port: b.port)
        _ = try await device.next("hello")
        let link = try #require(stack.server.peers.link(to: "server-b"))
        try await eventuallyTrue("A's link to server-b is up") { link.isConnected }
        if receiverReadsBatches {
            try await eventuallyTrue("server-b said it reads batches") { link.peerReadsBatchFrames }
        }

        let count = 300
        func probe(_ n: Int) -> PeerFrame {
            PeerFrame(type: "probe", users: [user], json: #"{"n":\#(n),"type":"probe"}"#)
        }
        link.send((0..<count).map(probe))
        link.send([probe(-1)])
        var seen: [Int] = []
        while true {
            let n = try await device.next("probe")["n"] as? Int ?? -2
            if n == -1 { break }
            seen.append(n)
        }
        #expect(seen == Array(0..<count))
        #expect(device.all("probe").count == count + 1, "a frame arrived twice")
        let batches = link.batchesWritten
        await device.close()
        await b.group.triggerGracefulShutdown()
        try await b.task.value
        try await stack.stop()
        return batches
    }
}
