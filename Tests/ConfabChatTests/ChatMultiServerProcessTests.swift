import Foundation
import Testing

/// Two `confab chat serve` processes over one `confab node` process: cross-server delivery over
/// `/internal/ws`, `wrong_server`, catch-up and failover after SIGKILL (docs/chat_protocol.md,
/// "Many servers").
@Suite(.serialized) struct ChatMultiServerProcessTests {
    func withCluster(_ body: (ChatClusterProcesses) async throws -> Void) async throws {
        let cluster = try await ChatClusterProcesses.start(servers: ["mc1", "mc2"])
        do {
            try await body(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    /// The first `count` names `prefix0, prefix1, …` owned by each server.
    func homed(_ cluster: ChatClusterProcesses, prefix: String, perServer count: Int) async throws -> [String: [String]]
    {
        var out: [String: [String]] = [:]
        for i in 0..<400 {
            let name = "\(prefix)\(i)"
            let owner = try await cluster.route(name)
            if out[owner.id, default: []].count < count { out[owner.id, default: []].append(name) }
            if out.count == 2, out.values.allSatisfy({ $0.count == count }) { return out }
        }
        throw TestFailure("could not find \(count) users per server: \(out)")
    }

    func register(_ cluster: ChatClusterProcesses, _ users: [String]) async throws -> [String: String] {
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            var tokens: [String: String] = [:]
            var next = 0
            func add() {
                guard next < users.count else { return }
                let u = users[next]
                next += 1
                group.addTask { (u, try await cluster.register(u)) }
            }
            for _ in 0..<8 { add() }
            for try await (u, t) in group {
                tokens[u] = t
                add()
            }
            return tokens
        }
    }

    /// Sends and waits for the ack, re-sending with the same clientId and `"retry": true` after an
    /// error (a QUORUM timeout on a loaded machine, an owner server that died), as clients do.
    /// The ack carries `"attempts"`: a send made more than once may be delivered live again, as
    /// the protocol says (docs/chat_protocol.md: devices de-duplicate by seq).
    func send(_ socket: TestSocket, chatId: String, clientId: String, text: String) async throws -> [String: Any] {
        for attempt in 1...4 {
            var frame: [String: Any] = ["type": "send", "chatId": chatId, "clientId": clientId, "text": text]
            if attempt > 1 { frame["retry"] = true }
            try socket.send(frame)
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                if var ack = try? await socket.next(
                    "ack", timeout: .milliseconds(20), where: { $0["clientId"] as? String == clientId })
                {
                    ack["attempts"] = attempt
                    return ack
                }
                if (try? await socket.next(
                    "error", timeout: .milliseconds(1), where: { $0["ref"] as? String == clientId })) != nil
                {
                    break
                }
            }
        }
        throw TestFailure("no ack for \(clientId) after 4 attempts")
    }

    /// POST that retries a 503 (QUORUM timeout under load) and answers the JSON of the success.
    func create(_ path: String, port: Int, token: String, body: [String: Any]) async throws -> [String: Any] {
        var last = ""
        for _ in 0..<4 {
            let r = try await ClusterHTTP.request(.post, path, port: port, token: token, body: body)
            if r.status == 200 || r.status == 201 { return r.json }
            last = "\(r.status) \(r.text)"
            guard r.status == 503 || r.status == 500 else { break }
        }
        throw TestFailure("POST \(path): \(last)")
    }

    /// The ids that occur more than once.
    static func repeats(_ ids: [String]) -> Set<String> {
        Set(Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys)
    }

    static func messageIds(_ frames: [[String: Any]]) -> [String] {
        frames.compactMap { ($0["message"] as? [String: Any])?["messageId"] as? String }
    }

    /// Sync pages from `cursors` (chatId → seq) until `more` is false: (message ids, final cursors).
    func sync(_ socket: TestSocket, cursors: [String: String]) async throws -> ([String], [String: String]) {
        var cursors = cursors
        var ids: [String] = []
        while true {
            try socket.send(["type": "sync", "cursors": cursors])
            let page = try await socket.next("sync")
            ids += (page["messages"] as? [[String: Any]] ?? []).compactMap { $0["messageId"] as? String }
            cursors = page["cursors"] as? [String: String] ?? cursors
            if page["more"] as? Bool != true { return (ids, cursors) }
        }
    }

    /// A device's cursors from the messages it received live: per chat, the highest seq up to
    /// which it holds an unbroken prev chain from `start` (what a client keeps, docs/chat_protocol.md).
    static func cursors(_ frames: [[String: Any]], start: [String: String] = [:]) -> [String: String] {
        var last = start.compactMapValues { Int64($0) }
        let messages = frames.compactMap { $0["message"] as? [String: Any] }
        var progressed = true
        while progressed {
            progressed = false
            for m in messages {
                guard let chat = m["chatId"] as? String, let seq = (m["seq"] as? String).flatMap({ Int64($0) }),
                    let prev = (m["prev"] as? String).flatMap({ Int64($0) }), prev == last[chat] ?? 0,
                    seq > (last[chat] ?? 0)
                else { continue }
                last[chat] = seq
                progressed = true
            }
        }
        return last.mapValues { String($0) }
    }

    @Test func directMessagesReachAUserOnTheOtherServerInRealTime() async throws {
        try await withCluster { cluster in
            let homes = try await homed(cluster, prefix: "dm", perServer: 1)
            let alice = homes["mc1"]![0]
            let bob = homes["mc2"]![0]
            let tokens = try await register(cluster, [alice, bob])
            let a = try await cluster.connect(alice, token: tokens[alice]!)
            let b = try await cluster.connect(bob, token: tokens[bob]!)
            #expect(a.serverId == "mc1" && b.serverId == "mc2")

            // A device on a server that does not own its user is sent to the owner.
            let misplaced = try await RawWebSocketProbe.open(
                port: cluster.port("mc2"), path: "/ws?token=\(tokens[alice]!)")
            let wrong = misplaced.firstJSON ?? [:]
            #expect(wrong["code"] as? String == "wrong_server", "\(misplaced)")
            #expect(
                wrong["server"] as? String == "http://127.0.0.1:\(cluster.port("mc1"))"
                    && wrong["serverId"] as? String == "mc1")
            #expect(misplaced.closeCode == 4021)

            let chat = try await create(
                "/api/chats/direct", port: cluster.port("mc1"), token: tokens[alice]!, body: ["with": bob])
            let chatId = try #require(chat["chatId"] as? String)
            // Presence is true whichever server is asked: bob is online although alice's server
            // holds none of his connections (issue 9, item 2).
            let presence = try await ClusterHTTP.request(
                .get, "/api/presence?users=\(bob),\(alice)", port: cluster.port("mc1"), token: tokens[alice]!)
            let states = (presence.json["presence"] as? [[String: Any]] ?? []).map {
                ($0["userId"] as? String ?? "", $0["online"] as? Bool ?? false)
            }
            #expect(states.map(\.0) == [bob, alice] && states.allSatisfy(\.1), "\(presence.text)")
            var latencies: [Duration] = []
            for i in 0..<20 {
                let (from, to) = i % 2 == 0 ? (a.socket, b.socket) : (b.socket, a.socket)
                let start = ContinuousClock.now
                let ack = try await send(from, chatId: chatId, clientId: "dm-\(i)", text: "hello \(i)")
                let id = try #require(ack["messageId"] as? String)
                _ = try await to.next("message", timeout: .seconds(5)) {
                    ($0["message"] as? [String: Any])?["messageId"] as? String == id
                }
                latencies.append(ContinuousClock.now - start)
            }
            // Typing travels the same path (never stored).
            try b.socket.send(["type": "typing", "chatId": chatId])
            _ = try await a.socket.next("typing", timeout: .seconds(5)) { $0["userId"] as? String == bob }
            // Each device got each message once.
            for s in [a.socket, b.socket] {
                let ids = Self.messageIds(s.all("message"))
                #expect(ids.count == 20 && Set(ids).count == 20)
            }
            // Each server reports its live link to the other.
            let health = try await ClusterHTTP.request(.get, "/api/health", port: cluster.port("mc1")).json
            #expect(((health["peers"] as? [String: Any])?["mc2"] as? [String: Any])?["connected"] as? Bool == true)
            latencies.sort()
            print("cross-server send→deliver over 20 messages: median \(latencies[10]), max \(latencies[19])")
            for s in [a.socket, b.socket] { await s.close() }
        }
    }

    @Test func aHundredMemberGroupOnBothServersGetsEachMessageOnceAndAnOfflineMemberCatchesUp() async throws {
        try await withCluster { cluster in
            // 100 members (creator included), the first 50 names owned by each server.
            let homes = try await homed(cluster, prefix: "gm", perServer: 50)
            let members = homes["mc1"]! + homes["mc2"]!
            let tokens = try await register(cluster, members)
            let sockets = try await withThrowingTaskGroup(of: (String, TestSocket).self) { group in
                for m in members { group.addTask { (m, try await cluster.connect(m, token: tokens[m]!).socket) } }
                var out: [String: TestSocket] = [:]
                for try await (m, s) in group { out[m] = s }
                return out
            }
            let creator = members[0]
            let created = try await create(
                "/api/chats/group", port: cluster.port("mc1"), token: tokens[creator]!,
                body: ["title": "everyone", "members": Array(members.dropFirst())])
            let chatId = try #require(created["chatId"] as? String)
            let senders = Array(homes["mc1"]!.prefix(3)) + Array(homes["mc2"]!.prefix(3))
            var acked: Set<String> = []
            var resent: Set<String> = []  // sent again after an error: may be delivered again
            try await withThrowingTaskGroup(of: [(String, Int)].self) { group in
                for sender in senders {
                    group.addTask {
                        var ids: [(String, Int)] = []
                        for i in 0..<2 {
                            let ack = try await self.send(
                                sockets[sender]!, chatId: chatId, clientId: "\(sender)-\(i)",
                                text: "from \(sender) #\(i)")
                            ids.append((ack["messageId"] as! String, ack["attempts"] as! Int))
                        }
                        return ids
                    }
                }
                for try await ids in group {
                    acked.formUnion(ids.map(\.0))
                    resent.formUnion(ids.filter { $0.1 > 1 }.map(\.0))
                }
            }
            #expect(acked.count == 12)
            try await eventuallyTrue("all 100 devices got all 12 messages", within: .seconds(15)) {
                sockets.values.allSatisfy { acked.isSubset(of: Set(Self.messageIds($0.all("message")))) }
            }
            // A fence, not a pause: the chat's owner hands every device its messages in seq order
            // (over the peer link, then the device's outbox, both FIFO), so once each device has
            // the fence, any second copy of the twelve that the owner or a link sent has arrived
            // before it.
            let fence = try await send(
                sockets[senders[0]]!, chatId: chatId, clientId: "fence", text: "fence")
            let fenceId = try #require(fence["messageId"] as? String)
            if fence["attempts"] as? Int ?? 1 > 1 { resent.insert(fenceId) }
            acked.insert(fenceId)
            try await eventuallyTrue("all 100 devices got the fence", within: .seconds(15)) {
                sockets.values.allSatisfy { Self.messageIds($0.all("message")).contains(fenceId) }
            }
            for (member, socket) in sockets {
                let ids = Self.messageIds(socket.all("message"))
                #expect(
                    Set(ids) == acked && Self.repeats(ids).isSubset(of: resent),
                    "\(member) got \(ids.count) message frames, \(Self.repeats(ids).subtracting(resent)) twice though sent once"
                )
            }

            // An offline member (owned by mc2) misses messages sent on mc1, then catches up with sync
            // from its cursors: per chat, the seq up to which it had every message.
            let offline = homes["mc2"]![10]
            let sender = homes["mc1"]![5]
            let cursor = Self.cursors(sockets[offline]!.all("message"))
            #expect(cursor[chatId] != nil)
            await sockets[offline]!.close()
            var missed: [String] = []
            for i in 0..<5 {
                missed.append(
                    try await send(
                        sockets[sender]!, chatId: chatId, clientId: "late-\(i)", text: "while you were away \(i)")[
                            "messageId"] as! String)
            }
            let back = try await cluster.connect(offline, token: tokens[offline]!)
            let (caughtUp, _) = try await sync(back.socket, cursors: cursor)
            #expect(caughtUp == missed)
            await back.socket.close()
            for s in sockets.values { await s.close() }
        }
    }

    @Test func afterSIGKILLOfAChatServerItsUsersMoveToTheOtherAndLoseNothing() async throws {
        try await withCluster { cluster in
            let homes = try await homed(cluster, prefix: "fo", perServer: 1)
            let victim = homes["mc1"]![0]
            let survivor = homes["mc2"]![0]
            let tokens = try await register(cluster, [victim, survivor])
            let v1 = try await cluster.connect(victim, token: tokens[victim]!).socket
            let s = try await cluster.connect(survivor, token: tokens[survivor]!).socket
            let chat = try await create(
                "/api/chats/direct", port: cluster.port("mc2"), token: tokens[survivor]!, body: ["with": victim])
            let chatId = try #require(chat["chatId"] as? String)
            let (_, cursor) = try await sync(v1, cursors: [:])

            // The victim's user sends through mc1 before it dies; the survivor sends throughout.
            // A send that had to be made again (its owner server died under it) may be delivered
            // live again: the protocol redelivers a retried message, devices de-duplicate by seq.
            var acked: [String] = []
            var resent: Set<String> = []
            func note(_ ack: [String: Any]) -> String {
                let id = ack["messageId"] as! String
                if ack["attempts"] as! Int > 1 { resent.insert(id) }
                return id
            }
            for i in 0..<5 {
                acked.append(note(try await send(v1, chatId: chatId, clientId: "v-\(i)", text: "before \(i)")))
            }
            let beforeKill = Set(acked)
            try await eventuallyTrue("the survivor got the victim's messages live") {
                beforeKill.isSubset(of: Set(Self.messageIds(s.all("message"))))
            }
            let survivorSends = Task {
                var acks: [[String: Any]] = []
                for i in 0..<40 {
                    acks.append(try await self.send(s, chatId: chatId, clientId: "s-\(i)", text: "steady \(i)"))
                    try await Task.sleep(for: .milliseconds(100))
                }
                return acks.map { ($0["messageId"] as! String, $0["attempts"] as! Int) }
            }
            try await Task.sleep(for: .milliseconds(800))
            let killed = ContinuousClock.now
            cluster.sigkill("mc1")
            _ = try await v1.closeCode(timeout: .seconds(10))

            // The client's reconnect loop: ask the route until it names a live server, connect, sync.
            var moved: (socket: TestSocket, serverId: String)? = nil
            let deadline = ContinuousClock.now + .seconds(20)
            while moved == nil, ContinuousClock.now < deadline {
                if let owner = try? await cluster.route(victim, askingPort: cluster.port("mc2")), owner.id == "mc2" {
                    moved = try? await cluster.connect(victim, token: tokens[victim]!)
                }
                if moved == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            let v2 = try #require(moved, "the victim's user found no server within 20 s").socket
            let failover = ContinuousClock.now - killed
            let (synced, _) = try await sync(v2, cursors: Self.cursors(v1.all("message"), start: cursor))
            for i in 0..<5 {
                acked.append(note(try await send(v2, chatId: chatId, clientId: "v2-\(i)", text: "after \(i)")))
            }
            for (id, attempts) in try await survivorSends.value {
                acked.append(id)
                if attempts > 1 { resent.insert(id) }
            }

            // The victim's devices, de-duplicated by messageId like every client: everything acked.
            let live1 = Self.messageIds(v1.all("message"))
            let live2 = Self.messageIds(v2.all("message"))
            #expect(
                Self.repeats(live1).union(Self.repeats(live2)).isSubset(of: resent),
                "a connection got a message twice live that was sent once: \(Self.repeats(live1 + live2).subtracting(resent))"
            )
            try await eventuallyTrue("the moved user has every acknowledged message") {
                Set(acked).isSubset(of: Set(live1 + Self.messageIds(v2.all("message")) + synced))
            }
            // The survivor, never disconnected: each message at most once live, and — following the
            // client rule, a `resync` (sent when mc1's link to mc2 broke: events mc1 had queued died
            // with it) or a gap means sync — nothing lost.
            let liveIds = Self.messageIds(s.all("message"))
            #expect(
                Self.repeats(liveIds).isSubset(of: resent),
                "the survivor got a message twice live that was sent once: \(Self.repeats(liveIds).subtracting(resent))"
            )
            if !resent.isEmpty {
                print(
                    "failover after SIGKILL: sends made again \(resent.sorted()), of them delivered twice live to the survivor \(Self.repeats(liveIds).sorted())"
                )
            }
            let (caughtUp, _) = try await sync(s, cursors: Self.cursors(s.all("message")))
            let survivorIds = liveIds + caughtUp.filter { !liveIds.contains($0) }
            #expect(
                Set(acked).subtracting(survivorIds).isEmpty,
                "survivor missed \(Set(acked).subtracting(survivorIds).count)")
            print("failover after SIGKILL: the victim's user was live on mc2 \(failover) after the kill")
            for socket in [v1, v2, s] { await socket.close() }
        }
    }
}
