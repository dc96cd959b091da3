import ConfabEngine
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

    /// An owner that was not told (its link was down) notices a removal when its cached members
    /// expire.
    @Test func cachedMembersExpire() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["ann", "ben", "cyd"])
        let group = try await f.chats.createGroup("ann", title: "g", members: ["ben", "cyd"])
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c1", text: "cached now")
        // The removal's rows, written without telling the owner.
        try await ChatCatalog(storage: f.storage, clock: f.clock).removeMember(chatId: group.chatId, userId: "cyd")
        _ = try await f.chats.send("cyd", chatId: group.chatId, clientId: "c2", text: "not noticed yet")
        f.clock.advance(micros: f.chats.sequencer.membersMaxAgeMicros)
        #expect(
            await chatErrorCode {
                try await f.chats.send("cyd", chatId: group.chatId, clientId: "c3", text: "noticed")
            } == .notAMember)
    }
}
