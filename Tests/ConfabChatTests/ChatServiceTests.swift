import ConfabEngine
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

@Suite struct ChatServiceTests {
    @Test func directChatIsTheSameChatFromBothSides() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben"])
        let a = try await f.chats.directChat("ann", with: "ben")
        let b = try await f.chats.directChat("ben", with: "Ann")
        #expect(a.chatId == b.chatId && a.chatId > 0)
        #expect(a.chatId == f.chats.directChatIds.id("ben", "ann"))
        #expect(a.kind == .direct && a.title == "ben" && b.title == "ann")
        #expect(a.members == ["ann", "ben"])
        #expect(await chatErrorCode { try await f.chats.directChat("ann", with: "nobody") } == .unknownUser)
        #expect(await chatErrorCode { try await f.chats.directChat("ann", with: "ann") } == .badRequest)
        #expect(try await f.chats.chats(for: "ann").map(\.chatId) == [a.chatId])
        // Both members heard about the chat.
        #expect(
            f.delivery.events(for: "ben").contains {
                if case .chat(let c) = $0 { return c.chatId == a.chatId } else { return false }
            })
    }

    @Test func groupsHoldAtMostOneHundredMembers() async throws {
        let f = ServiceFixture()
        let people = (0..<101).map { "user\($0)" }
        try await f.quickUsers(people)
        // 100 including the creator: fine.
        let group = try await f.chats.createGroup("user0", title: "Hundred", members: Array(people[1..<100]))
        #expect(group.members.count == 100)
        // The 101st is refused, clearly, and not added.
        let code = await chatErrorCode {
            try await f.chats.addMember("user0", chatId: group.chatId, newMember: "user100")
        }
        #expect(code == .groupFull)
        #expect(try await f.chats.chat("user0", chatId: group.chatId).members.count == 100)
        #expect(try await f.chats.chats(for: "user100").isEmpty)
        // A group created with 101 members is refused too.
        #expect(
            await chatErrorCode {
                try await f.chats.createGroup("user0", title: "Too big", members: Array(people[1...]))
            } == .groupFull)
        // After someone leaves there is room again.
        try await f.chats.removeMember("user5", chatId: group.chatId, target: "user5")
        _ = try await f.chats.addMember("user1", chatId: group.chatId, newMember: "user100")
        #expect(try await f.chats.chat("user0", chatId: group.chatId).members.contains("user100"))
    }

    @Test func addRemoveAndLeave() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["owner", "mm1", "mm2", "mm3"])
        let g = try await f.chats.createGroup("owner", title: "Team", members: ["mm1", "MM2", "mm1", "owner"])
        #expect(g.members == ["mm1", "mm2", "owner"])
        #expect(g.title == "Team" && g.kind == .group && g.createdBy == "owner")
        #expect(
            await chatErrorCode { try await f.chats.createGroup("owner", title: "x", members: ["ghost"]) }
                == .unknownUser)

        _ = try await f.chats.addMember("mm1", chatId: g.chatId, newMember: "mm3")
        #expect(try await f.chats.chats(for: "mm3").map(\.chatId) == [g.chatId])
        // Only the owner removes others; anyone may leave.
        #expect(
            await chatErrorCode { try await f.chats.removeMember("mm1", chatId: g.chatId, target: "mm2") }
                == .notAMember)
        try await f.chats.removeMember("owner", chatId: g.chatId, target: "mm2")
        try await f.chats.removeMember("mm3", chatId: g.chatId, target: "mm3")
        #expect(try await f.chats.chat("owner", chatId: g.chatId).members == ["mm1", "owner"])
        #expect(try await f.chats.chats(for: "mm2").isEmpty)
        #expect(f.delivery.events(for: "mm2").contains(.chatRemoved(chatId: g.chatId)))
        // A removed member can no longer send or read.
        #expect(
            await chatErrorCode { try await f.chats.send("mm2", chatId: g.chatId, clientId: "c1", text: "hi") }
                == .notAMember)
        #expect(
            await chatErrorCode { try await f.chats.history("mm2", chatId: g.chatId, before: nil, limit: 10) }
                == .notAMember)
        #expect(
            await chatErrorCode { try await f.chats.send("mm1", chatId: 12345, clientId: "c1", text: "hi") }
                == .notAMember)
        // Direct chats have no membership changes.
        let d = try await f.chats.directChat("mm1", with: "mm2")
        #expect(
            await chatErrorCode { try await f.chats.addMember("mm1", chatId: d.chatId, newMember: "mm3") } == .notAGroup
        )
        #expect(
            await chatErrorCode { try await f.chats.removeMember("mm1", chatId: d.chatId, target: "mm1") } == .notAGroup
        )
    }

    @Test func aRetriedSendIsStoredAndDeliveredOnce() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["amy", "bob"])
        let chat = try await f.chats.directChat("amy", with: "bob")
        let first = try await f.chats.send("amy", chatId: chat.chatId, clientId: "phone-1", text: "hello")
        f.clock.advance(seconds: 5)
        let retry = try await f.chats.send("amy", chatId: chat.chatId, clientId: "phone-1", text: "hello")
        #expect(!first.duplicate && retry.duplicate)
        #expect(first.messageId == retry.messageId && first.seq == retry.seq && first.ts == retry.ts)
        // Concurrent duplicates coalesce too.
        async let c1 = f.chats.send("amy", chatId: chat.chatId, clientId: "phone-2", text: "again")
        async let c2 = f.chats.send("amy", chatId: chat.chatId, clientId: "phone-2", text: "again")
        let (r1, r2) = try await (c1, c2)
        #expect(r1.messageId == r2.messageId && r1.duplicate != r2.duplicate)
        // The same client id from another sender is a different message.
        let other = try await f.chats.send("bob", chatId: chat.chatId, clientId: "phone-1", text: "hi amy")
        #expect(other.messageId != first.messageId && !other.duplicate)

        let history = try await f.chats.history("bob", chatId: chat.chatId, before: nil, limit: 50)
        #expect(history.messages.map(\.text) == ["hi amy", "again", "hello"])
        #expect(history.messages.last?.clientId == "phone-1" && history.messages.last?.sender == "amy")
        #expect(f.delivery.messages(for: "bob").map(\.text) == ["hello", "again", "hi amy"])
    }

    /// Text made only of whitespace and newlines (any Unicode space, U+2028, U+0085…) is refused;
    /// text with one visible character among them is stored as sent.
    @Test func aBlankMessageIsRefusedAndPaddedTextIsKept() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["vic", "wes"])
        let chat = try await f.chats.directChat("vic", with: "wes")
        let writesBefore = f.storage.requestCounts.writes
        for blank in ["", " ", "\n\t\r", "\u{3000}\u{2028}\u{2029}\u{85}\u{A0}\u{B}\u{C}"] {
            #expect(
                await chatErrorCode { try await f.chats.send("vic", chatId: chat.chatId, clientId: "b", text: blank) }
                    == .badRequest, "\(Array(blank.unicodeScalars))")
        }
        #expect(f.storage.requestCounts.writes == writesBefore)
        let padded = "\u{3000} \n.\t "
        _ = try await f.chats.send("vic", chatId: chat.chatId, clientId: "b", text: padded)
        #expect(
            try await f.chats.history("wes", chatId: chat.chatId, before: nil, limit: 5).messages.map(\.text) == [
                padded
            ])
    }

    @Test func aTooLongMessageIsRefusedAndNothingIsStored() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["tom", "uma"])
        let chat = try await f.chats.directChat("tom", with: "uma")
        let writesBefore = f.storage.requestCounts.writes
        // 100,001 Unicode scalars (multi-byte ones, to count scalars, not bytes).
        let long = String(repeating: "é", count: 100_001)
        #expect(
            await chatErrorCode { try await f.chats.send("tom", chatId: chat.chatId, clientId: "x", text: long) }
                == .messageTooLong)
        #expect(f.storage.requestCounts.writes == writesBefore)
        #expect(try await f.chats.history("tom", chatId: chat.chatId, before: nil, limit: 10).messages.isEmpty)
        #expect(f.delivery.messages(for: "uma").isEmpty)
        // The client id was not burnt: the same id with a valid text goes through.
        let exact = String(repeating: "é", count: 100_000)
        let ack = try await f.chats.send("tom", chatId: chat.chatId, clientId: "x", text: exact)
        #expect(!ack.duplicate)
        let stored = try await f.chats.history("uma", chatId: chat.chatId, before: nil, limit: 10).messages
        #expect(stored.map(\.text.unicodeScalars.count) == [100_000])
        #expect(
            await chatErrorCode { try await f.chats.send("tom", chatId: chat.chatId, clientId: "y", text: "   ") }
                == .badRequest)
    }

    @Test func unreadCountsReadCursorsAndListOrder() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ali", "bea", "cyd"])
        let d1 = try await f.chats.directChat("ali", with: "bea")
        f.clock.advance(seconds: 1)
        let d2 = try await f.chats.directChat("ali", with: "cyd")
        var acks: [SendAck] = []
        for i in 0..<3 {
            f.clock.advance(micros: 10)
            acks.append(try await f.chats.send("bea", chatId: d1.chatId, clientId: "b\(i)", text: "from bea \(i)"))
        }
        f.clock.advance(micros: 10)
        _ = try await f.chats.send("ali", chatId: d1.chatId, clientId: "a0", text: "mine")
        var list = try await f.chats.chats(for: "ali")
        // d1 has the latest message; d2 (no messages) is ordered by when al joined it.
        #expect(list.map(\.chatId) == [d1.chatId, d2.chatId])
        #expect(list[0].unread == 3 && list[0].lastMessage?.text == "mine")
        #expect(list[1].unread == 0 && list[1].lastMessage == nil)

        try await f.chats.markRead("ali", chatId: d1.chatId, cursor: ReadCursor(seq: acks[1].seq))
        #expect(try await f.chats.chat("ali", chatId: d1.chatId).unread == 1)
        // A cursor never moves back.
        try await f.chats.markRead("ali", chatId: d1.chatId, cursor: ReadCursor(seq: acks[0].seq))
        let summary = try await f.chats.chat("ali", chatId: d1.chatId)
        #expect(summary.unread == 1 && summary.readCursor?.seq == acks[1].seq)
        #expect(
            f.delivery.events(for: "bea").contains(
                .read(chatId: d1.chatId, userId: "ali", cursor: ReadCursor(seq: acks[1].seq))))

        f.clock.advance(micros: 10)
        _ = try await f.chats.send("cyd", chatId: d2.chatId, clientId: "c0", text: "news")
        list = try await f.chats.chats(for: "ali")
        #expect(list.map(\.chatId) == [d2.chatId, d1.chatId])
        #expect(list.map(\.unread) == [1, 1])
        #expect(
            await chatErrorCode {
                try await f.chats.markRead("cyd", chatId: d1.chatId, cursor: ReadCursor(seq: acks[0].seq))
            } == .notAMember)
    }

    /// Issue 12: read receipts are rate limited per user (each is a members read, a write and an
    /// event to every member): a burst of 50, then 10 a second; the refused ones store nothing and
    /// reach nobody.
    @Test func readReceiptsAreRateLimitedPerUser() async throws {
        let f = ServiceFixture()
        try await f.users(["rae", "rob", "ray"])
        let chat = try await f.chats.directChat("rae", with: "rob")
        let ack = try await f.chats.send("rob", chatId: chat.chatId, clientId: "r0", text: "read me")
        func receiptsToRob() -> Int {
            f.delivery.events(for: "rob").filter { if case .read = $0 { return true } else { return false } }.count
        }
        for _ in 0..<50 {
            try await f.chats.markRead("rae", chatId: chat.chatId, cursor: ReadCursor(seq: ack.seq))
        }
        #expect(receiptsToRob() == 50)
        #expect(
            await chatErrorCode {
                try await f.chats.markRead("rae", chatId: chat.chatId, cursor: ReadCursor(seq: ack.seq))
            } == .rateLimited)
        #expect(receiptsToRob() == 50)
        // Another user has a bucket of their own.
        let other = try await f.chats.directChat("ray", with: "rob")
        try await f.chats.markRead("ray", chatId: other.chatId, cursor: ReadCursor(seq: 1))
        f.clock.advance(seconds: 1)
        try await f.chats.markRead("rae", chatId: chat.chatId, cursor: ReadCursor(seq: ack.seq))
        #expect(receiptsToRob() == 52)
    }

    /// Issue 12: nobody is added to a group without recourse. A member leaves and blocks whoever
    /// added them; that person then cannot add them again, put them in a new group, or start a
    /// direct chat with them. Others still can, and lifting the block lets the person add them.
    @Test func aUserWhoLeftAndBlockedTheAdderIsNotAddedAgain() async throws {
        let f = ServiceFixture()
        try await f.users(["spam", "vic", "pal"])
        let group = try await f.chats.createGroup("spam", title: "deals", members: ["vic"])
        try await f.chats.removeMember("vic", chatId: group.chatId, target: "vic")
        try await f.chats.block("vic", "spam")
        #expect(try await f.chats.blocks(of: "vic") == ["spam"])
        #expect(
            await chatErrorCode { _ = try await f.chats.addMember("spam", chatId: group.chatId, newMember: "vic") }
                == .blocked)
        #expect(
            await chatErrorCode { _ = try await f.chats.createGroup("spam", title: "more", members: ["pal", "vic"]) }
                == .blocked)
        #expect(await chatErrorCode { _ = try await f.chats.directChat("spam", with: "vic") } == .blocked)
        #expect(try await f.chats.chats(for: "vic").isEmpty, "a refused add still reached vic's chat list")
        // Someone else may add vic; vic may still start a direct chat with the person blocked.
        _ = try await f.chats.createGroup("pal", title: "friends", members: ["vic"])
        _ = try await f.chats.directChat("vic", with: "spam")
        #expect(await chatErrorCode { try await f.chats.block("vic", "vic") } == .badRequest)
        #expect(await chatErrorCode { try await f.chats.block("vic", "nobody_here") } == .unknownUser)
        try await f.chats.unblock("vic", "spam")
        #expect(try await f.chats.blocks(of: "vic").isEmpty)
        _ = try await f.chats.addMember("spam", chatId: group.chatId, newMember: "vic")
    }

    /// Issue 12: a sync costs 1 + N reads, so a user's syncs are paced (20 in a burst, then 5 a
    /// second): the ones over the budget wait for it and still answer in full.
    @Test func syncsBeyondTheBudgetWaitTheirTurnAndStillAnswer() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["syn", "sam"])
        let chat = try await f.chats.directChat("syn", with: "sam")
        _ = try await f.chats.send("sam", chatId: chat.chatId, clientId: "s1", text: "catch me up")
        for _ in 0..<20 { _ = try await f.chats.sync("syn", cursors: [:], limit: 10) }
        #expect(f.syncWaitedMicros.withLockedValue { $0 } == 0)
        for _ in 0..<10 {
            let page = try await f.chats.sync("syn", cursors: [:], limit: 10)
            #expect(page.messages.map(\.text) == ["catch me up"])
        }
        #expect(f.syncWaitedMicros.withLockedValue { $0 } == 2_000_000, "ten syncs over the burst wait 0.2 s each")
        _ = try await f.chats.sync("sam", cursors: [:], limit: 10)
        #expect(f.syncWaitedMicros.withLockedValue { $0 } == 2_000_000, "another user has a budget of their own")
    }

    /// One sync of a user at a time; the others queue in order, and past 16 waiting a sync is
    /// refused rather than let the queue grow.
    @Test func aUsersSyncsRunOneAtATimeAndTheQueueIsBounded() async throws {
        let clock = ManualClock()
        let gate = SyncGate(
            limiter: RateLimiter(ratePerSecond: 1000, burst: 1000, clock: clock), maxWaiting: 16, sleep: { _ in })
        let (release, released) = AsyncStream<Void>.makeStream()
        let order = NIOLockedValueBox<[Int]>([])
        let first = Task {
            try await gate.run("u") {
                order.withLockedValue { $0.append(0) }
                for await _ in release { break }
            }
        }
        while order.withLockedValue({ $0 }).isEmpty { await Task.yield() }
        var queued: [Task<Void, any Error>] = []
        for i in 1...16 {
            queued.append(Task { try await gate.run("u") { order.withLockedValue { $0.append(i) } } })
            while gate.waiting("u") < i { await Task.yield() }
        }
        #expect(order.withLockedValue { $0 } == [0], "a second sync ran beside the first")
        await #expect(throws: ChatError.self) { try await gate.run("u") { () } }
        try await gate.run("other") { () }  // another user is not held up
        released.yield()
        try await first.value
        for t in queued { try await t.value }
        #expect(order.withLockedValue { $0 } == Array(0...16))
        #expect(gate.waiting("u") == 0)
    }

    /// Issue 12: a direct chat's id is keyed with the deployment's secret, so nobody without it
    /// can compute the id for two people; a chat made under the old unkeyed id (or another
    /// secret) is still the pair's one chat, found through the user's chat list.
    @Test func directChatIdsAreKeyedAndAnEarlierChatIsKept() async throws {
        let ours = DirectChatIds(secret: Array("deployment-one-secret".utf8))
        let theirs = DirectChatIds(secret: Array("deployment-two-secret".utf8))
        #expect(ours.id("ann", "ben") == ours.id("ben", "ann"))
        #expect(ours.id("ann", "ben") != theirs.id("ann", "ben"))
        #expect(ours.id("ann", "ben") != DirectChatIds.unkeyedId("ann", "ben"))
        #expect(ours.id("ann", "ben") > 0 && ours.id("ann", "cyd") != ours.id("ann", "ben"))

        let f = ServiceFixture()
        try await f.quickUsers(["old", "pal"])
        let store = ChatCatalog(storage: f.storage, clock: f.clock)
        let legacyId = DirectChatIds.unkeyedId("old", "pal")
        let legacy = ChatRecord(chatId: legacyId, kind: .direct, title: "", createdBy: "old", createdAt: 1)
        try await store.putChat(legacy)
        try await store.addMember(chat: legacy, userId: "old", role: .member, title: "pal", joinedAt: 1)
        try await store.addMember(chat: legacy, userId: "pal", role: .member, title: "old", joinedAt: 1)
        #expect(try await f.chats.directChat("old", with: "pal").chatId == legacyId)
        #expect(try await f.chats.directChat("pal", with: "old").chatId == legacyId)
        #expect(try await f.chats.chats(for: "old").map(\.chatId) == [legacyId])
    }

    @Test func unreadCountsStopAtTheCap() async throws {
        var limits = ChatService.Limits()
        limits.unreadCap = 5
        let f = ServiceFixture(limits: limits)
        try await f.quickUsers(["pia", "que"])
        let d = try await f.chats.directChat("pia", with: "que")
        for i in 0..<8 { _ = try await f.chats.send("que", chatId: d.chatId, clientId: "\(i)", text: "m\(i)") }
        #expect(try await f.chats.chat("pia", chatId: d.chatId).unread == 5)
    }

    @Test func historyPagesBackwards() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["hh1", "hh2"])
        let d = try await f.chats.directChat("hh1", with: "hh2")
        for i in 0..<25 {
            _ = try await f.chats.send(i % 2 == 0 ? "hh1" : "hh2", chatId: d.chatId, clientId: "c\(i)", text: "m\(i)")
        }
        var seen: [String] = []
        var before: MessageRecord? = nil
        while true {
            let page = try await f.chats.history("hh2", chatId: d.chatId, before: before?.seq, limit: 10)
            seen += page.messages.map(\.text)
            before = page.messages.last
            if !page.more { break }
        }
        #expect(seen == (0..<25).reversed().map { "m\($0)" })
        #expect(
            await chatErrorCode { try await f.chats.history("hh2", chatId: d.chatId, before: nil, limit: 0) }
                == .badRequest)
    }

    @Test func sendsAreRateLimitedPerUserAndNothingIsStored() async throws {
        let f = ServiceFixture(sendsPerSecond: 2, burst: 3)
        try await f.quickUsers(["fast", "slow"])
        let d = try await f.chats.directChat("fast", with: "slow")
        for i in 0..<3 { _ = try await f.chats.send("fast", chatId: d.chatId, clientId: "ok\(i)", text: "m\(i)") }
        #expect(
            await chatErrorCode { try await f.chats.send("fast", chatId: d.chatId, clientId: "no", text: "flood") }
                == .rateLimited)
        // Another user is not affected.
        _ = try await f.chats.send("slow", chatId: d.chatId, clientId: "s", text: "calm")
        #expect(try await f.chats.history("slow", chatId: d.chatId, before: nil, limit: 50).messages.count == 4)
        f.clock.advance(micros: 500_000)  // one token back: a retry is charged like any send, and stores nothing new
        #expect(try await f.chats.send("fast", chatId: d.chatId, clientId: "ok0", text: "m0").duplicate)
        #expect(
            await chatErrorCode { try await f.chats.send("fast", chatId: d.chatId, clientId: "later", text: "x") }
                == .rateLimited)
        f.clock.advance(micros: 500_000)
        _ = try await f.chats.send("fast", chatId: d.chatId, clientId: "later", text: "after a pause")
        #expect(
            await chatErrorCode { try await f.chats.send("fast", chatId: d.chatId, clientId: "no2", text: "x") }
                == .rateLimited)
    }

    @Test func storageFailuresAreReportedAsUnavailable() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ss1", "ss2"])
        let d = try await f.chats.directChat("ss1", with: "ss2")
        f.storage.setFailing(true)
        #expect(
            await chatErrorCode { try await f.chats.send("ss1", chatId: d.chatId, clientId: "c", text: "lost?") }
                == .storageUnavailable)
        f.storage.setFailing(false)
        #expect(!(try await f.chats.send("ss1", chatId: d.chatId, clientId: "c", text: "lost?").duplicate))
    }
}

/// A message's id is stored and compared across servers and versions, so its bytes are fixed.
struct MessageIdTests {
    /// Known answers, written by the formula before it was written byte by byte (decimal chat id,
    /// NUL, sender, NUL, clientId through Murmur3 x64-128 seed 0x3E55; both halves in hex, padded).
    @Test func messageIdsKeepTheirBytes() {
        #expect(ChatLog.messageId(chatId: 1, sender: "alice", clientId: "c-1") == Self.reference(1, "alice", "c-1"))
        var rng = SplitMix64(seed: testSeed())
        for _ in 0..<2_000 {
            let chat = Int64(bitPattern: rng.next()) >> Int64.random(in: 0...63, using: &rng)
            let sender = String(
                (0..<Int.random(in: 0...12, using: &rng)).map { _ in "ab_9é🙂".randomElement(using: &rng)! })
            let client = String(
                (0..<Int.random(in: 0...40, using: &rng)).map { _ in "xyz-0\u{0}".randomElement(using: &rng)! })
            let id = ChatLog.messageId(chatId: chat, sender: sender, clientId: client)
            #expect(id == Self.reference(chat, sender, client), "chat \(chat) sender \(sender) client \(client)")
            #expect(id.utf8.count == 32)
        }
    }

    /// The formula as it was written before.
    static func reference(_ chatId: Int64, _ sender: String, _ clientId: String) -> String {
        let bytes = Array("\(chatId)\u{0}\(sender)\u{0}\(clientId)".utf8)
        let (a, b) = bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0x3E55) }
        func padded(_ s: String) -> String { String(repeating: "0", count: 16 - s.count) + s }
        return padded(String(a, radix: 16)) + padded(String(b, radix: 16))
    }
}
