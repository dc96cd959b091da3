import ConfabEngine
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

/// Item 6 and 7 of the review: a device never silently misses a live event, and typing is thinned
/// as documented.
@Suite struct LiveDeliveryTests {
    /// Frames a full peer queue drops are not forgotten: their users get a `resync` as soon as the
    /// queue has room, so their devices catch up.
    @Test func framesDroppedFromAFullPeerQueueBecomeAResync() async throws {
        let link = PeerLink.unconnected(maxFrames: 2)
        link.send(PeerFrame(type: "message", users: ["amy"], json: "{}"))
        link.send(PeerFrame(type: "message", users: ["bob"], json: "{}"))
        link.send(PeerFrame(type: "message", users: ["cat", "dan"], json: "{}"))  // dropped: the queue holds 2
        #expect(link.queue.count == 2)
        _ = await link.queue.next()
        // Room for the resync first, then this one is dropped.
        link.send(PeerFrame(type: "typing", users: ["eve"], json: "{}"))
        var frames: [PeerFrame] = []
        while link.queue.count > 0, let text = await link.queue.next() {
            if let f = PeerFrame.parse(text) { frames.append(f) }
        }
        #expect(frames.map(\.type) == ["message", "resync"])
        #expect(frames.last?.users == ["cat", "dan"])
        #expect(frames.last?.json == ServerEvent.resync.json())
        link.flushDropped()  // eve's dropped typing frame becomes a resync as soon as there is room
        let last = await link.queue.next().flatMap(PeerFrame.parse)
        #expect(last?.type == "resync" && last?.users == ["eve"])
    }

    /// A server whose heartbeats do not reach the ring stops counting itself live: the others have
    /// moved its users and chats away, so it must not keep owning them.
    @Test func aServerWhoseHeartbeatFailsStopsOwningUsers() async throws {
        let clock = ManualClock()
        let storage = InMemoryRingStorage(clock: clock)
        let store = ChatCatalog(storage: storage, clock: clock)
        try await store.putServer(
            id: "other", address: "http://127.0.0.1:2", peerAddress: "http://127.0.0.1:3", beat: 1,
            ttlSeconds: 3600)
        let directory = ServerDirectory(serverId: "me", store: store, ttlSeconds: 10, logger: Logger(label: "test"))
        directory.setAddress("http://127.0.0.1:1")
        storage.setFailing(true)
        await #expect(throws: (any Error).self) { try await directory.heartbeat() }
        storage.setFailing(false)
        try await directory.refresh()
        #expect(!directory.isLive)
        #expect((0..<50).allSatisfy { directory.owner(of: "user\($0)").id == "other" })
        try await directory.heartbeat()
        try await directory.refresh()
        #expect(directory.isLive)
        #expect((0..<50).contains { directory.owner(of: "user\($0)").id == "me" })
    }

    /// A server whose heartbeat value stops changing leaves the live set after the silence, on
    /// this server's own clock, and its peer link goes with it, though its row stays in the ring
    /// (docs/chat_ordering.md § Leases); a new value brings it back.
    @Test func aServerWhoseHeartbeatValueStopsChangingLeavesAfterTheSilence() async throws {
        let clock = ManualClock()
        let store = ChatCatalog(storage: InMemoryRingStorage(clock: clock), clock: clock)
        let monotonic = NIOLockedValueBox<Int64>(1_000_000_000)
        let directory = ServerDirectory(
            serverId: "me", store: store, ttlSeconds: 10, logger: Logger(label: "test"),
            now: { monotonic.withLockedValue { $0 } })
        directory.setAddress("http://127.0.0.1:1")
        func beat(_ value: Int64) async throws {
            try await store.putServer(
                id: "other", address: "http://127.0.0.1:2", peerAddress: "http://127.0.0.1:3", beat: value,
                ttlSeconds: 3600)
        }
        try await beat(1)
        try await directory.heartbeat()
        try await directory.refresh()
        #expect(Set(directory.servers.keys) == ["me", "other"])
        #expect(directory.peerLinkAddresses["other"] == "http://127.0.0.1:3")
        // Just under the silence: still live.
        monotonic.withLockedValue { $0 += 10_000_000_000 - 1 }
        try await directory.heartbeat()
        try await directory.refresh()
        #expect(Set(directory.servers.keys) == ["me", "other"])
        // The silence has passed with the same value: gone, link address too.
        monotonic.withLockedValue { $0 += 1 }
        try await directory.heartbeat()
        try await directory.refresh()
        #expect(Set(directory.servers.keys) == ["me"])
        #expect(directory.peerLinkAddresses["other"] == nil)
        // A new value: live again.
        try await beat(2)
        try await directory.refresh()
        #expect(Set(directory.servers.keys) == ["me", "other"])
    }

    /// Typing: at most one event per user and chat every 2.5 s reaches the others.
    @Test func typingIsThinnedPerUserAndChat() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["tya", "tyb", "tyc"])
        let d1 = try await f.chats.directChat("tya", with: "tyb")
        let d2 = try await f.chats.directChat("tya", with: "tyc")
        func typings(_ user: String) -> Int {
            f.delivery.events(for: user).filter { if case .typing = $0 { return true } else { return false } }.count
        }
        for _ in 0..<10 { try await f.chats.typing("tya", chatId: d1.chatId) }
        #expect(typings("tyb") == 1)
        try await f.chats.typing("tya", chatId: d2.chatId)
        #expect(typings("tyc") == 1)
        f.clock.advance(micros: 2_000_000)
        try await f.chats.typing("tya", chatId: d1.chatId)
        #expect(typings("tyb") == 1)
        f.clock.advance(micros: 600_000)
        try await f.chats.typing("tya", chatId: d1.chatId)
        #expect(typings("tyb") == 2)
    }
}
