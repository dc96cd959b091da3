import ConfabEngine
import Foundation
import Testing
@testable import ConfabChat

@Suite struct SyncTests {
    @Test func syncReturnsEverythingMissedAcrossChatsInOrder() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["me_", "xav", "yan", "zed"])
        let dx = try await f.chats.directChat("me_", with: "xav")
        let g = try await f.chats.createGroup("yan", title: "g", members: ["me_", "zed"])
        let other = try await f.chats.directChat("xav", with: "yan")  // not mine
        let start = f.clock.nowMicros()
        var expected: [String] = []
        for i in 0..<30 {
            f.clock.advance(micros: 7)
            let (who, chat) = [("xav", dx.chatId), ("yan", g.chatId), ("zed", g.chatId), ("me_", dx.chatId)][i % 4]
            let ack = try await f.chats.send(who, chatId: chat, clientId: "c\(i)", text: "t\(i)")
            expected.append(ack.messageId)
            _ = try await f.chats.send("xav", chatId: other.chatId, clientId: "o\(i)", text: "not for me")
        }
        var got: [MessageRecord] = []
        var cursor = start
        var pages = 0
        while true {
            let page = try await f.chats.sync("me_", since: cursor, limit: 7)
            got += page.messages
            pages += 1
            #expect(page.cursor >= cursor)
            cursor = page.cursor
            if !page.more { break }
            #expect(pages < 20)
        }
        #expect(got.map(\.messageId) == expected)
        #expect(pages >= 5)
        #expect(zip(got, got.dropFirst()).allSatisfy { $0.precedes($1) })
        // Nothing new: an empty page with the same cursor.
        let empty = try await f.chats.sync("me_", since: cursor, limit: 7)
        #expect(empty.messages.isEmpty && !empty.more && empty.cursor == cursor)
    }

    /// Random chats, senders and timestamp collisions (several servers stamping the same µs):
    /// paging with any limit returns every message exactly once, in order.
    @Test(arguments: [1, 2, 3, 5, 50])
    func syncNeverSkipsOrRepeatsWithEqualTimestamps(limit: Int) async throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        var rng = SplitMix(seed: seed)
        let f = ServiceFixture()
        try await f.quickUsers(["me_", "abe", "bea"])
        let chats = [try await f.chats.directChat("me_", with: "abe").chatId, try await f.chats.directChat("me_", with: "bea").chatId,
                     try await f.chats.createGroup("abe", title: "ab", members: ["me_", "bea"]).chatId]
        let store = ChatStore(storage: f.storage, clock: f.clock)
        let base = f.clock.nowMicros()
        var all: [MessageRecord] = []
        for i in 0..<60 {
            // Write directly with chosen (often equal) timestamps, as several servers might.
            let m = MessageRecord(chatId: chats[Int(rng.next() % 3)], messageId: "m\(i)", ts: base + Int64(rng.next() % 8),
                                  sender: "abe", text: "\(i)", clientId: nil)
            try await store.putMessage(m)
            all.append(m)
        }
        var got: [MessageRecord] = []
        var cursor = base - 1
        for _ in 0..<200 {
            let page = try await f.chats.sync("me_", since: cursor, limit: limit)
            got += page.messages
            cursor = page.cursor
            if !page.more { break }
        }
        #expect(got.map(\.messageId) == all.sorted { $0.precedes($1) }.map(\.messageId), "seed \(seed) limit \(limit)")
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
