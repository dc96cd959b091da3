import ConfabEngine
import ConfabRing
import ConfabTestSupport
import ConfabWire
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

/// Catch-up, per-chat order and idempotent sends (docs/chat_ordering.md): the guarantees the
/// review found broken with timestamp cursors, checked against the services over an in-memory
/// ring, and with two servers that both believe they own a chat (the worst case of an ownership
/// change) over a ring whose requests are slow and fail at random.
@Suite struct SyncTests {
    @Test func syncReturnsEverythingMissedAcrossChatsInChatOrder() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["me_", "xav", "yan", "zed"])
        let dx = try await f.chats.directChat("me_", with: "xav")
        let g = try await f.chats.createGroup("yan", title: "g", members: ["me_", "zed"])
        let other = try await f.chats.directChat("xav", with: "yan")  // not mine
        var expected: [Int64: [String]] = [:]
        for i in 0..<30 {
            let (who, chat) = [("xav", dx.chatId), ("yan", g.chatId), ("zed", g.chatId), ("me_", dx.chatId)][i % 4]
            let ack = try await f.chats.send(who, chatId: chat, clientId: "c\(i)", text: "t\(i)")
            expected[chat, default: []].append(ack.messageId)
            _ = try await f.chats.send("xav", chatId: other.chatId, clientId: "o\(i)", text: "not for me")
        }
        var got: [Int64: [MessageRecord]] = [:]
        var cursors: [Int64: Int64] = [:]
        var pages = 0
        while true {
            let page = try await f.chats.sync("me_", cursors: cursors, limit: 7)
            #expect(page.messages.count <= 7)
            for m in page.messages { got[m.chatId, default: []].append(m) }
            pages += 1
            for (chat, seq) in page.cursors { #expect(seq >= cursors[chat] ?? 0) }
            cursors = page.cursors
            if !page.more { break }
            #expect(pages < 20)
        }
        #expect(Set(cursors.keys) == [dx.chatId, g.chatId])
        #expect(got.mapValues { $0.map(\.messageId) } == expected)
        #expect(pages >= 5)
        for (_, ms) in got {
            #expect(zip(ms, ms.dropFirst()).allSatisfy { $0.seq < $1.seq && $1.prev == $0.seq })
            #expect(ms.first?.prev == 0)
        }
        // Nothing new: an empty page with the same cursors.
        let empty = try await f.chats.sync("me_", cursors: cursors, limit: 7)
        #expect(empty.messages.isEmpty && !empty.more && empty.cursors == cursors)
    }

    /// Item 3: the write reached the ring but its answer was lost. The retry (same clientId,
    /// `retry`) is acknowledged as a duplicate AND delivered — the first attempt never was.
    @Test func aRetryAfterALostAnswerIsDeliveredAndStoredOnce() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["pam", "quin"])
        let chat = try await f.chats.directChat("pam", with: "quin")
        _ = try await f.chats.send("pam", chatId: chat.chatId, clientId: "warm", text: "opens the chat")
        f.storage.failAfterApplying(writes: 1)
        #expect(
            await chatErrorCode {
                try await f.chats.send("pam", chatId: chat.chatId, clientId: "lost-ack", text: "did it arrive?")
            }
                == .storageUnavailable)
        #expect(!f.delivery.messages(for: "quin").contains { $0.clientId == "lost-ack" })
        let retry = try await f.chats.send(
            "pam", chatId: chat.chatId, clientId: "lost-ack", text: "did it arrive?", retry: true)
        #expect(retry.duplicate)
        #expect(f.delivery.messages(for: "quin").filter { $0.clientId == "lost-ack" }.map(\.seq) == [retry.seq])
        let stored = try await f.chats.history("quin", chatId: chat.chatId, before: nil, limit: 50).messages
        #expect(stored.filter { $0.clientId == "lost-ack" }.count == 1)
    }

    /// Item 4: the same clientId reaching two chat servers at once is one message: both forward
    /// to the chat's owner, which places it once.
    @Test func theSameClientIdAtTwoServersAtOnceIsStoredOnce() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["rae", "sol"])
        let chat = try await f.chats.directChat("rae", with: "sol")
        // A second server whose sends go to the first's sequencer (the chat's owner).
        let second = ChatService(
            store: ChatCatalog(storage: f.storage, clock: f.clock), delivery: f.delivery,
            limiter: RateLimiter(ratePerSecond: 1000, burst: 1000, clock: f.clock), clock: f.clock,
            serverId: "second", router: InProcessRouting(owner: f.chats.sequencer))
        for i in 0..<8 {
            async let a = f.chats.send("rae", chatId: chat.chatId, clientId: "twin-\(i)", text: "once \(i)")
            async let b = second.send("rae", chatId: chat.chatId, clientId: "twin-\(i)", text: "once \(i)")
            let (x, y) = try await (a, b)
            #expect(x.messageId == y.messageId && x.seq == y.seq && x.duplicate != y.duplicate)
        }
        let stored = try await f.chats.history("sol", chatId: chat.chatId, before: nil, limit: 50).messages
        #expect(stored.count == 8 && Set(stored.map(\.messageId)).count == 8)
    }

    /// Item 5: a clientId reused with other text is refused, and the stored message is untouched —
    /// right after the send and after the owner forgot it (a restart: the ring's index answers).
    @Test func aClientIdReusedWithOtherTextIsRefused() async throws {
        let f = ServiceFixture()
        try await f.quickUsers(["tia", "uri"])
        let chat = try await f.chats.directChat("tia", with: "uri")
        _ = try await f.chats.send("tia", chatId: chat.chatId, clientId: "same", text: "the original")
        #expect(
            await chatErrorCode {
                try await f.chats.send("tia", chatId: chat.chatId, clientId: "same", text: "a rewrite")
            } == .clientIdReused)
        let restarted = ChatService(
            store: ChatCatalog(storage: f.storage, clock: f.clock), delivery: f.delivery,
            limiter: RateLimiter(ratePerSecond: 1000, burst: 1000, clock: f.clock), clock: f.clock, serverId: "again")
        #expect(
            await chatErrorCode {
                try await restarted.send("tia", chatId: chat.chatId, clientId: "same", text: "a rewrite", retry: true)
            }
                == .clientIdReused)
        #expect(
            try await restarted.send("tia", chatId: chat.chatId, clientId: "same", text: "the original", retry: true)
                .duplicate)
        let stored = try await f.chats.history("uri", chatId: chat.chatId, before: nil, limit: 50).messages
        #expect(stored.map(\.text) == ["the original"])
    }

    /// Items 1 and 3–5 together, under the worst case: two chat servers that both order the same
    /// chats (an ownership change seen by one and not yet by the other), over a ring whose every
    /// request is slow by a random few hundred µs and fails at random — before or after taking
    /// effect. Senders retry until acknowledged (with `retry`); a device syncs from its cursors the
    /// whole time. At the end the device holds every acknowledged message exactly once, its
    /// incremental catch-up saw exactly what a full read sees, every chat's prev chain is whole,
    /// and no clientId is stored twice.
    @Test(arguments: 0..<12)
    func twoOwnersSlowAndFailingWritesNeverSkipOrDuplicate(run: Int) async throws {
        try await twoOwners(run: run, epochStep: { Int64.random(in: 0..<256) })
    }

    /// The same with both servers drawing the same random part of every new epoch: whenever they
    /// open a chat from the same header at once, only the epochs' server slots tell them apart
    /// (`ChatLog.nextEpoch`). With epochs of `previous + 1 + draw` both placed messages at the
    /// same seqs, and an unacknowledged placement replaced an acknowledged one.
    @Test(arguments: 0..<6)
    func twoOwnersDrawingTheSameEpochNeverSkipOrDuplicate(run: Int) async throws {
        #expect(ChatLog.epochSlot(of: "a") != ChatLog.epochSlot(of: "b"))
        try await twoOwners(run: run, epochStep: { 0 })
    }

    /// A new epoch is above the one it follows whatever the draw, and its low byte is the
    /// server's slot; two slots give two epochs from the same header and draw.
    @Test func aNewEpochRisesAndCarriesTheServersSlot() {
        #expect(ChatLog.nextEpoch(after: 0, slot: 7, step: 0) == 0x107)
        #expect(ChatLog.nextEpoch(after: 0x1234, slot: 0xAB, step: 3) == 0x16AB)
        var previous: Int64 = 0
        var rng = SplitMix(seed: 42)
        for _ in 0..<10_000 {
            let step = Int64(rng.next() % 256)
            let a = ChatLog.nextEpoch(after: previous, slot: 0x11, step: step)
            let b = ChatLog.nextEpoch(after: previous, slot: 0x12, step: step)
            #expect(a > previous && b > previous && a != b && a & 0xFF == 0x11)
            previous = rng.next() % 2 == 0 ? a : b
        }
        #expect(previous < ChatLog.maxEpoch)
    }

    func twoOwners(run: Int, epochStep: @escaping @Sendable () -> Int64) async throws {
        // CONFAB_SEED replays the storage faults; the two owners' interleaving still varies.
        let seed = testSeed()
        let clock = ManualClock()
        let memory = InMemoryRingStorage(clock: clock)
        let chaos = ChaosStorage(inner: memory, seed: seed)
        let delivery = RecordingDelivery()
        func service(_ id: String) -> ChatService {
            ChatService(
                store: ChatCatalog(storage: chaos.server(id), clock: clock), delivery: delivery,
                limiter: RateLimiter(ratePerSecond: 1e9, burst: 1e9, clock: clock), clock: clock, serverId: id,
                epochStep: epochStep)
        }
        let servers = [service("a"), service("b")]
        let setup = ChatCatalog(storage: memory, clock: clock)
        for u in ["dev", "sx1", "sx2", "sx3"] {
            try await setup.putUser(UserRecord(userId: u, passwordHash: "x", createdAt: 1))
        }
        let plain = ChatService(
            store: setup, delivery: delivery, limiter: RateLimiter(ratePerSecond: 1e9, burst: 1e9, clock: clock),
            clock: clock)
        let chats = [
            try await plain.createGroup("dev", title: "g1", members: ["sx1", "sx2", "sx3"]).chatId,
            try await plain.createGroup("dev", title: "g2", members: ["sx1", "sx2"]).chatId,
        ]
        chaos.enabled.withLockedValue { $0 = true }

        let acked = NIOLockedValueBox<[String: SendAck]>([:])
        let seen = NIOLockedValueBox<[Int64: [MessageRecord]]>([:])
        let done = NIOLockedValueBox(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, sender) in ["sx1", "sx2", "sx3"].enumerated() {
                group.addTask {
                    var rng = SplitMix(seed: seed &+ UInt64(i))
                    for n in 0..<25 {
                        let chat = sender == "sx3" ? chats[0] : chats[Int(rng.next() % 2)]
                        let clientId = "\(sender)-\(n)"
                        var retry = false
                        while true {
                            let server = servers[Int(rng.next() % 2)]
                            do {
                                let ack = try await server.send(
                                    sender, chatId: chat, clientId: clientId, text: "m \(clientId)", retry: retry)
                                acked.withLockedValue { $0[clientId] = ack }
                                break
                            } catch let e as ChatError where e.code == .storageUnavailable {
                                retry = true
                            }
                        }
                    }
                }
            }
            group.addTask {
                // The device: catch up from its cursors over and over while the others send.
                var cursors: [Int64: Int64] = [:]
                var rng = SplitMix(seed: seed ^ 0xDE51CE)
                while true {
                    let last = done.withLockedValue { $0 }
                    do {
                        let page = try await servers[Int(rng.next() % 2)].sync(
                            "dev", cursors: cursors, limit: 1 + Int(rng.next() % 9))
                        seen.withLockedValue { s in for m in page.messages { s[m.chatId, default: []].append(m) } }
                        cursors = page.cursors
                        if last && !page.more { break }
                    } catch let e as ChatError where e.code == .storageUnavailable {}
                    await Task.yield()
                }
            }
            for _ in 0..<3 { try await group.next() }
            chaos.enabled.withLockedValue { $0 = false }
            done.withLockedValue { $0 = true }
            try await group.waitForAll()
        }

        let full = ChatLog(store: ChatCatalog(storage: memory, clock: clock))
        var stored: [MessageRecord] = []
        for chat in chats { stored += try await full.messages(chatId: chat, after: 0, limit: 10_000) }
        let acks = acked.withLockedValue { $0 }
        let held = seen.withLockedValue { $0 }
        let note = "seed \(seed), run \(run), chaos \(chaos.counts)"
        #expect(acks.count == 75, "\(note)")
        // No clientId stored twice, and every stored message was acknowledged (senders retry until acked).
        #expect(Dictionary(grouping: stored, by: { $0.clientId ?? "" }).values.allSatisfy { $0.count == 1 }, "\(note)")
        #expect(Set(stored.compactMap(\.clientId)) == Set(acks.keys), "\(note)")
        // The ack names the stored placement.
        for m in stored { #expect(acks[m.clientId ?? ""]?.seq == m.seq, "\(note)") }
        for chat in chats {
            let log = stored.filter { $0.chatId == chat }
            let raw = held[chat] ?? []
            // A device may have caught a placement an ownership change then retracted (written by
            // the fenced owner, never acknowledged, tombstoned by the new one): the same messageId
            // comes again at a higher seq, and the device keeps that one (docs/chat_ordering.md).
            let newest = Dictionary(raw.map { ($0.messageId, $0.seq) }, uniquingKeysWith: max)
            let device = raw.filter { newest[$0.messageId] == $0.seq }
            #expect(zip(raw, raw.dropFirst()).allSatisfy { $0.seq < $1.seq }, "\(note) chat \(chat)")
            // Incremental catch-up saw exactly the log: nothing skipped, nothing twice, in order.
            #expect(device.map(\.seq) == log.map(\.seq), "\(note) chat \(chat)")
            // The prev chain is whole: a device can tell it holds everything.
            #expect(log.first?.prev == 0, "\(note)")
            #expect(
                zip(log, log.dropFirst()).allSatisfy { $1.prev == $0.seq && $1.seq > $0.seq },
                "\(note): \(log.map { "\(String($0.seq, radix: 16))←\(String($0.prev, radix: 16)) \($0.clientId ?? "")" })\n\(chaos.trace(chat: chat))"
            )
        }
    }
}

/// Sends of a second in-process "server" go to the owner's sequencer.
struct InProcessRouting: ChatRouting {
    let owner: ChatSequencer
    func forward(chatId: Int64, _ send: ChatSequencer.Send) async throws -> SendAck? {
        try await owner.append(chatId: chatId, send)
    }
    func membersChanged(chatId: Int64) async throws { owner.membersChanged(chatId: chatId) }
}

/// A ring whose requests are slow and fail at random while `enabled`: each takes 0–400 µs, and
/// one in eight fails — half of those before taking effect, half after (the answer is lost).
final class ChaosStorage: RingStorage {
    let inner: InMemoryRingStorage
    let enabled = NIOLockedValueBox(false)
    private let rng: NIOLockedValueBox<SplitMix>
    private let tally = NIOLockedValueBox<(requests: Int, failedBefore: Int, failedAfter: Int)>((0, 0, 0))
    /// What happened to `chat.messages`, in order: printed when a run breaks, since the owners'
    /// interleaving is not seeded and a failure does not replay.
    private let events = NIOLockedValueBox<[(partition: [UInt8], text: String)]>([])

    /// This storage as one server sees it: its requests are traced under `label`.
    func server(_ label: String) -> any RingStorage { Tagged(chaos: self, label: label) }

    private struct Tagged: RingStorage {
        let chaos: ChaosStorage
        let label: String
        func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
            try await chaos.write(mutation, consistency: consistency, label: label)
        }
        func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
            try await chaos.read(query, consistency: consistency, label: label)
        }
    }

    /// The trace of `chat.messages` requests for one chat (seqs and write times in hex).
    func trace(chat: Int64) -> String {
        let key = ChatTables.key(chat: chat)
        return events.withLockedValue { $0.filter { $0.partition == key }.map(\.text).joined(separator: "\n") }
    }

    private static func seq(_ k: [UInt8]) -> Int64? {
        guard case .int64(let v)? = ClusteringKey.components(of: k)?.first else { return nil }
        return v
    }

    private func note(_ label: String, _ m: Mutation, _ what: String) {
        guard m.table == ChatLog.table else { return }
        func hex(_ v: Int64?) -> String { v.map { String($0, radix: 16) } ?? "?" }
        let rows = m.rows.compactMap { r -> String? in
            guard let v = Self.seq(r.clustering), v >= 0 else { return nil }
            return "\(hex(v))@\(hex(r.fragment.liveness?.timestamp))"
        }
        let tombs = m.header.rangeTombstones.map {
            "[\(hex(Self.seq($0.start)))..\($0.end.map { hex(Self.seq($0)) } ?? "∞"))@\(hex($0.deletion.timestamp))"
        }
        events.withLockedValue {
            $0.append((m.partitionKey, "\($0.count) \(label) write \(what) rows \(rows) tombs \(tombs)"))
        }
    }

    init(inner: InMemoryRingStorage, seed: UInt64) {
        self.inner = inner
        self.rng = NIOLockedValueBox(SplitMix(seed: seed ^ 0xC4A05))
    }

    var counts: String {
        tally.withLockedValue { "\($0.requests) requests, \($0.failedBefore) failed before, \($0.failedAfter) after" }
    }

    private func roll() -> (delay: UInt64, fail: Int) {
        guard enabled.withLockedValue({ $0 }) else { return (0, 0) }
        return rng.withLockedValue { r in
            let delay = r.next() % 400
            let f = r.next() % 16
            return (delay, f == 0 ? 1 : f == 1 ? 2 : 0)
        }
    }

    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        try await write(mutation, consistency: consistency, label: "-")
    }

    func write(_ mutation: Mutation, consistency: ConsistencyLevel, label: String) async throws -> WriteAck {
        let (delay, fail) = roll()
        tally.withLockedValue { $0.requests += 1 }
        if delay > 0 { try await Task.sleep(for: .microseconds(delay)) }
        if fail == 1 {
            tally.withLockedValue { $0.failedBefore += 1 }
            note(label, mutation, "dropped")
            throw WireError(.timeout, "chaos: failed before applying")
        }
        let ack = try await inner.write(mutation, consistency: consistency)
        note(label, mutation, fail == 2 ? "applied, answer lost" : "applied")
        if fail == 2 {
            tally.withLockedValue { $0.failedAfter += 1 }
            throw WireError(.timeout, "chaos: applied, answer lost")
        }
        return ack
    }

    func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
        try await read(query, consistency: consistency, label: "-")
    }

    func read(_ query: SliceQuery, consistency: ConsistencyLevel, label: String) async throws -> ReplicaRows {
        let (delay, fail) = roll()
        if delay > 0 { try await Task.sleep(for: .microseconds(delay)) }
        if fail != 0 { throw WireError(.timeout, "chaos: read failed") }
        let rows = try await inner.read(query, consistency: consistency)
        if query.table == ChatLog.table {
            let seqs = rows.rows.compactMap { r in
                Self.seq(r.clustering).flatMap { $0 >= 0 ? String($0, radix: 16) : nil }
            }
            events.withLockedValue { $0.append((query.partitionKey, "\($0.count) \(label) read \(seqs)")) }
        }
        return rows
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
