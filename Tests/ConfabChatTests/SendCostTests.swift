import ConfabEngine
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

/// What a send costs the ring in the steady state, and that the owner's cached members never let
/// a removed member send or keep a new member from hearing (docs/chat_ordering.md, "Members").
@Suite struct SendCostTests {
    /// Issue 11: a send into a chat its owner has open reads no members. One batch is one write
    /// and the fence read (it was one write and two reads: members, then the fence).
    @Test func aSteadyStateSendIsOneWriteAndOneFenceRead() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben", "cyd"])
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        // The first send opens the chat (header, tail, members): not the steady state.
        _ = try await f.chats.send("ann", chatId: group.chatId, clientId: "warm", text: "warm up")
        let before = f.storage.requestCounts
        let membersBefore = f.chats.sequencer.membersReads
        let sends = 20
        for i in 0..<sends {
            let sender = ["ann", "ben", "cyd"][i % 3]
            _ = try await f.chats.send(sender, chatId: group.chatId, clientId: "c\(i)", text: "message \(i)")
        }
        let after = f.storage.requestCounts
        #expect(f.chats.sequencer.membersReads == membersBefore, "members were read on the send path")
        #expect(after.writes - before.writes == sends, "ring writes for \(sends) sequential sends")
        #expect(after.reads - before.reads == sends, "ring reads for \(sends) sequential sends (the fence only)")
    }

    /// A directory of one live server, "local", holding its lease; its monotonic clock only moves
    /// when the test moves it.
    static func leasedDirectory() async throws -> (ServerDirectory, ChatCatalog, NIOLockedValueBox<Int64>) {
        let monotonic = NIOLockedValueBox<Int64>(1_000_000_000)
        let directoryClock = ManualClock()
        let directoryStore = ChatCatalog(storage: InMemoryRingStorage(clock: directoryClock), clock: directoryClock)
        let directory = ServerDirectory(
            serverId: "local", store: directoryStore, ttlSeconds: 10, logger: Logger(label: "test"),
            now: { monotonic.withLockedValue { $0 } })
        directory.setAddress("http://127.0.0.1:1")
        try await directory.heartbeat()
        try await directory.refresh()
        return (directory, directoryStore, monotonic)
    }

    /// A group of ann, ben and cyd that "local" keeps owning when "other" joins (chat ids are
    /// random; about half of them qualify), so that view change moves nothing.
    static func groupThatStays(_ f: ServiceFixture) async throws -> ChatSummary {
        try await f.quickUsers(["ann", "ben", "cyd"])
        var group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        func stays(_ chatId: Int64) -> Bool {
            ServerHashing(servers: ["local": "a", "other": "b"]).owner(of: "#\(chatId)") == "local"
        }
        for i in 0..<200 where !stays(group.chatId) {
            group = try await f.chats.createGroup("ann", title: "g\(i)", members: ["ben", "cyd"])
        }
        try #require(stays(group.chatId))
        return group
    }

    /// Issue 11: with the ownership lease held (docs/chat_ordering.md § Leases), a steady-state send
    /// is one ring write and no read. Without the lease, or after the view of the live servers
    /// changed, one batch is fenced and the chat is covered by the lease again from there.
    @Test func aSteadyStateSendUnderTheLeaseIsOneWriteAndNoRead() async throws {
        let (directory, directoryStore, monotonic) = try await Self.leasedDirectory()
        let f = ServiceFixture(lease: directory)
        let group = try await Self.groupThatStays(f)
        _ = try await f.chats.send("ann", chatId: group.chatId, clientId: "warm", text: "warm up")
        var n = 0
        func sendAndCount(_ count: Int) async throws -> (writes: Int, reads: Int) {
            let before = f.storage.requestCounts
            for _ in 0..<count {
                n += 1
                _ = try await f.chats.send(
                    ["ann", "ben", "cyd"][n % 3], chatId: group.chatId, clientId: "c\(n)", text: "m \(n)")
            }
            let after = f.storage.requestCounts
            return (after.writes - before.writes, after.reads - before.reads)
        }
        let steady = try await sendAndCount(20)
        #expect(steady.writes == 20 && steady.reads == 0, "\(steady)")
        #expect(f.chats.sequencer.fenceReads == 0)

        // The lease runs out (no heartbeat for longer than the lease): the next batch is fenced.
        monotonic.withLockedValue { $0 += directory.timings.leaseNanos + 1 }
        let lapsed = try await sendAndCount(1)
        #expect(lapsed.writes == 1 && lapsed.reads == 1, "\(lapsed)")
        // Heartbeat and directory read again (the same period: nobody could have declared it dead).
        // The fence above ran without the lease, so it could not re-stamp the chat: the first
        // batch after the renewal is fenced once more, then the lease covers the chat again.
        try await directory.heartbeat()
        try await directory.refresh()
        let renewed = try await sendAndCount(5)
        #expect(renewed.writes == 5 && renewed.reads == 1, "\(renewed)")
        let steadyAgain = try await sendAndCount(5)
        #expect(steadyAgain.writes == 5 && steadyAgain.reads == 0, "\(steadyAgain)")

        // Another server appears (one the chat does not move to).
        try await directoryStore.putServer(
            id: "other", address: "http://127.0.0.1:2", peerAddress: "http://127.0.0.1:3", beat: 1, ttlSeconds: 3600)
        try await directory.refresh()
        #expect(directory.servers.count == 2)
        // The view changed, so one fence, and the members are read again (one read).
        let afterChange = try await sendAndCount(3)
        #expect(afterChange.writes == 3 && afterChange.reads == 2, "\(afterChange)")
        #expect(f.chats.sequencer.fenceReads == 3)
    }

    /// A chat is opened only under the lease, and only by its owner in this server's view: a
    /// server whose lease has not begun waits (here, until the wait's bound) and says why. Its
    /// monotonic clock moves 10 s per reading, so the bound passes at the first look back: with
    /// 100 ms steps, each of ~60 turns waited the remaining bound in real time (63 s in all).
    @Test func withoutALeaseAChatIsNotOpened() async throws {
        let monotonic = NIOLockedValueBox<Int64>(1_000_000_000)
        let directoryClock = ManualClock()
        let directory = ServerDirectory(
            serverId: "local",
            store: ChatCatalog(storage: InMemoryRingStorage(clock: directoryClock), clock: directoryClock),
            ttlSeconds: 2, logger: Logger(label: "test"),
            now: {
                monotonic.withLockedValue {
                    $0 += 10_000_000_000
                    return $0
                }
            })
        directory.setAddress("http://127.0.0.1:1")
        let f = ServiceFixture(lease: directory)
        try await f.quickUsers(["ann", "ben"])
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben"])
        let before = f.storage.requestCounts
        let code = await chatErrorCode {
            _ = try await f.chats.send("ann", chatId: group.chatId, clientId: "x", text: "no lease")
        }
        #expect(code == .storageUnavailable)
        #expect(f.storage.requestCounts.writes == before.writes, "nothing was written without a lease")
    }

    @Test func aRemovedMembersNextSendIsRefusedAndANewMemberHearsTheNextMessage() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben", "cyd", "dan"])
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c1", text: "still here")
        try await f.chats.removeMember("ann", chatId: group.chatId, target: "cyd")
        #expect(
            await chatErrorCode {
                try await f.chats.send("cyd", chatId: group.chatId, clientId: "c2", text: "after removal")
            } == .notAMember)
        _ = try await f.chats.addMember("ann", chatId: group.chatId, newMember: "dan")
        _ = try await f.chats.send("ben", chatId: group.chatId, clientId: "b1", text: "welcome dan")
        #expect(f.delivery.messages(for: "dan").map(\.text) == ["welcome dan"])
        #expect(!f.delivery.messages(for: "cyd").map(\.text).contains("welcome dan"))
    }

    /// A removal made through a server that does not own the chat reaches the owner's cache
    /// before it is acknowledged.
    @Test func aRemovalThroughAnotherServerReachesTheOwnersCache() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben", "cyd"])
        let second = ChatService(
            store: ChatCatalog(storage: f.storage, clock: f.clock), delivery: f.delivery,
            limiter: RateLimiter(ratePerSecond: 1000, burst: 1000, clock: f.clock), clock: f.clock,
            serverId: "second", router: InProcessRouting(owner: f.chats.sequencer))
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c1", text: "cached now")
        try await second.removeMember("cyd", chatId: group.chatId, target: "cyd")
        #expect(
            await chatErrorCode {
                try await f.chats.send("cyd", chatId: group.chatId, clientId: "c2", text: "after leaving")
            } == .notAMember)
    }

    /// Issue 11: the owner's cached members are current for as long as the live set of servers
    /// stays the same — no read however long the chat runs — and are read again after the set
    /// changes: once at the next batch, and once more when the servers' views have settled, since a
    /// change made through a server whose view differed may not have been told to this owner.
    @Test func cachedMembersAreReadAgainWhenTheLiveSetChanges() async throws {
        let (directory, directoryStore, monotonic) = try await Self.leasedDirectory()
        var otherBeat: Int64? = nil
        /// Moves the directory's clock past the settle time; this server heartbeats (its lease
        /// holds) and so does "other" once it has joined (it stays in the live set).
        func settle() async throws {
            monotonic.withLockedValue { $0 += directory.settleNanos }
            try await directory.heartbeat()
            if let beat = otherBeat {
                otherBeat = beat + 1
                try await beatOther()
            }
            try await directory.refresh()
        }
        func beatOther() async throws {
            try await directoryStore.putServer(
                id: "other", address: "http://127.0.0.1:2", peerAddress: "http://127.0.0.1:3", beat: otherBeat!,
                ttlSeconds: 3600)
        }
        let f = ServiceFixture(lease: directory)
        let group = try await Self.groupThatStays(f)
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c0", text: "views settling")
        // A server's first view is a change too: members read in it are read once more when it
        // has settled.
        #expect(!directory.liveSetView.settled)
        try await settle()
        #expect(directory.liveSetView.settled)
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c1", text: "cached now")
        // The removal's rows, written as a server whose view names another owner would: this
        // owner is not told.
        try await ChatCatalog(storage: f.storage, clock: f.clock).removeMember(chatId: group.chatId, userId: "cyd")
        let reads = f.chats.sequencer.membersReads
        for hour in 1...3 {
            f.clock.advance(micros: 3_600_000_000)
            _ = try await f.chats.send("ann", chatId: group.chatId, clientId: "a\(hour)", text: "an hour on")
        }
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c2", text: "not noticed: no view change")
        #expect(f.chats.sequencer.membersReads == reads, "members were read with the live set unchanged")

        // Another server appears: the next batch reads the members.
        otherBeat = 1
        try await beatOther()
        try await directory.refresh()
        #expect(
            await chatErrorCode {
                try await f.chats.send("cyd", chatId: group.chatId, clientId: "c3", text: "noticed")
            } == .notAMember)
        #expect(f.chats.sequencer.membersReads == reads + 1)
        // That read was made while views may still differ: a removal told to another server in
        // that time is noticed once they have settled, with one more read, and then none.
        try await ChatCatalog(storage: f.storage, clock: f.clock).removeMember(chatId: group.chatId, userId: "ben")
        _ = try await f.chats.send("ben", chatId: group.chatId, clientId: "b1", text: "views still settling")
        #expect(f.chats.sequencer.membersReads == reads + 1)
        try await settle()
        #expect(
            await chatErrorCode {
                try await f.chats.send("ben", chatId: group.chatId, clientId: "b2", text: "noticed once settled")
            } == .notAMember)
        for i in 0..<3 {
            try await settle()
            _ = try await f.chats.send("ann", chatId: group.chatId, clientId: "s\(i)", text: "settled")
        }
        #expect(f.chats.sequencer.membersReads == reads + 2)
    }

    /// A membership change whose owner server cannot be told at once is told again until it
    /// answers: its next batch then reads the members.
    @Test func anOwnerThatCannotBeToldIsToldAgain() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben", "cyd"])
        let router = FlakyMembersRouting(owner: f.chats.sequencer, failures: 3)
        let second = ChatService(
            store: ChatCatalog(storage: f.storage, clock: f.clock), delivery: f.delivery,
            limiter: RateLimiter(ratePerSecond: 1000, burst: 1000, clock: f.clock), clock: f.clock,
            serverId: "second", router: router, syncSleep: { _ in })
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c1", text: "cached now")
        try await second.removeMember("cyd", chatId: group.chatId, target: "cyd")
        try await eventuallyTrue("the owner was told after 3 failed attempts") { router.told }
        #expect(router.attempts == 4)
        #expect(
            await chatErrorCode {
                try await f.chats.send("cyd", chatId: group.chatId, clientId: "c2", text: "after leaving")
            } == .notAMember)
    }

    /// A batch is one ring request, so it is bounded in bytes as well as in sends: sends queued
    /// behind a slow batch go out in batches whose texts fit `maxBatchBytes` (one at least).
    @Test func aBatchStopsAtItsByteBudget() async throws {
        let f = try await GatedChatFixture()
        let (clock, gate) = (f.clock, f.gate())
        let chat = try await f.group()
        let sequencer = ChatSequencer(
            serverId: "s", store: ChatCatalog(storage: gate, clock: clock), delivery: RecordingDelivery(),
            stamper: MessageStamper(clock: clock), logger: Logger(label: "test"), maxBatchBytes: 250)
        let isBatch: @Sendable (Mutation) -> Bool = { m in
            m.header.rangeTombstones.isEmpty && m.rows.contains { $0.clustering != ChatLog.key(0) }
        }
        let first = gate.holdNextWrite(isBatch)
        let text = String(repeating: "x", count: 100)
        let send = { @Sendable (n: Int) in
            try await sequencer.append(
                chatId: chat, .init(sender: "ann", clientId: "c\(n)", text: text, retry: false))
        }
        let head = Task { try await send(0) }
        await first.reached()
        // Five more queue behind the held batch: 100 bytes each, 250 per batch → 2, 2, 1.
        let rest = (1...5).map { n in Task { try await send(n) } }
        // The tasks enqueue on their own schedule; wait (yielding, up to 10 s) until all five have.
        let deadline = ContinuousClock.now + .seconds(10)
        while sequencer.queuedSends(chatId: chat) < 5 {
            try #require(ContinuousClock.now < deadline, "the five sends never queued")
            await Task.yield()
        }
        first.release()
        _ = try await head.value
        for t in rest { _ = try await t.value }
        let batches = gate.writes.filter(isBatch).map { $0.rows.count / 2 }
        #expect(batches == [1, 2, 2, 1], "messages per batch write (each with its index row)")
    }
}

/// Routes sends to `owner` in process; its first `failures` membership notices fail as a down
/// link would.
final class FlakyMembersRouting: ChatRouting, @unchecked Sendable {
    let owner: ChatSequencer
    private let state: NIOLockedValueBox<(left: Int, attempts: Int, told: Bool)>

    init(owner: ChatSequencer, failures: Int) {
        self.owner = owner
        state = NIOLockedValueBox((failures, 0, false))
    }

    var attempts: Int { state.withLockedValue { $0.attempts } }
    var told: Bool { state.withLockedValue { $0.told } }

    func forward(chatId: Int64, _ send: ChatSequencer.Send) async throws -> SendAck? {
        try await owner.append(chatId: chatId, send)
    }

    func membersChanged(chatId: Int64) async throws {
        let fail = state.withLockedValue { s -> Bool in
            s.attempts += 1
            if s.left > 0 {
                s.left -= 1
                return true
            }
            s.told = true
            return false
        }
        if fail { throw ChatError(.storageUnavailable, "link down (test)") }
        owner.membersChanged(chatId: chatId)
    }
}
