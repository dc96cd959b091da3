import ConfabEngine
import ConfabRing
import ConfabWire
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

/// An opening's closing tombstone can land long after the opening began: a slow request, a hint
/// replayed later, a repair. These tests hold chosen writes of one server at a gate, so such a
/// late write lands exactly where it hurts (docs/chat_ordering.md § Late tombstones).
struct LateTombstoneTests {
    /// Server a's second batch (p) is slow; b opens the chat meanwhile and reads the log's end
    /// before p lands, but its closing tombstone is slow too. p lands; a's fence fails; a opens
    /// again above b, and its end read sees p (b's tombstone is still on its way), so a chains its
    /// next message onto p and answers p's retry as a duplicate of p. Then b's tombstone lands.
    ///
    /// Before adoption (tombstones at `Int64.max`), that tombstone retracted p: an acknowledged
    /// message (the retry's ack) was lost, and the next message's `prev` named a seq no longer in
    /// the log.
    @Test func aLateTombstoneOfAnEarlierOpeningRetractsNothingALaterOpeningReliedOn() async throws {
        let f = try await GatedChatFixture()
        let gateA = f.gate()
        let gateB = f.gate()
        let a = f.server("a", gateA)
        let b = f.server("b", gateB)
        let setup = f.setup
        let chat = try await a.createGroup("ann", title: "g", members: ["bob"]).chatId

        var acks: [String: SendAck] = [:]
        acks["m1"] = try await a.send("ann", chatId: chat, clientId: "m1", text: "one")

        // a's next batch is held before it reaches the ring.
        let heldP = gateA.holdNextWrite(Self.isBatch)
        let sendP = Task { try await a.send("ann", chatId: chat, clientId: "p", text: "two") }
        await heldP.reached()

        // b opens: its header and end read pass, its closing tombstone is held.
        let heldClose = gateB.holdNextWrite(Self.isOpening)
        let sendB = Task { try await b.send("bob", chatId: chat, clientId: "b1", text: "from b") }
        await heldClose.reached()

        // p lands; a's fence sees b's epoch and acknowledges nothing.
        heldP.release()
        await #expect(throws: ChatError.self) { try await sendP.value }

        // a opens again, above b, and sees p.
        acks["m3"] = try await a.send("ann", chatId: chat, clientId: "m3", text: "three")
        acks["p"] = try await a.send("ann", chatId: chat, clientId: "p", text: "two", retry: true)
        #expect(acks["p"]?.duplicate == true)

        // b's tombstone lands late; b's own placement is then closed by a's opening.
        heldClose.release()
        await #expect(throws: ChatError.self) { try await sendB.value }

        let log = try await ChatLog(store: setup).messages(chatId: chat, after: 0, limit: 100)
        #expect(log.map(\.clientId) == ["m1", "p", "m3"], "every acknowledged message stays")
        for m in log { #expect(acks[m.clientId ?? ""]?.seq == m.seq) }
        #expect(log.first?.prev == 0)
        #expect(zip(log, log.dropFirst()).allSatisfy { $1.prev == $0.seq }, "the prev chain is whole: \(log)")
    }
}

extension LateTombstoneTests {
    /// A duplicate is answered only after the fence, like a new message. Server c's batch (p) is
    /// slow. a starts opening the chat to answer p's retry, b opens above a and reads the log's end
    /// before p lands; its tombstone is slow. a's end read then sees p and finds p's clientId in it.
    /// Answering "duplicate of p" there, before any fence, acknowledged a message that b's
    /// tombstone (newer than a's opening) then retracted.
    @Test func aDuplicateIsAnsweredOnlyAfterTheFence() async throws {
        let (setup, gates, a, b, c, chat) = try await Self.threeServers()
        var acks: [String: SendAck] = [:]
        acks["m1"] = try await c.send("ann", chatId: chat, clientId: "m1", text: "one")

        let heldP = gates.c.holdNextWrite(Self.isBatch)
        let sendP = Task { try await c.send("ann", chatId: chat, clientId: "p", text: "two") }
        await heldP.reached()
        let heldHeaderA = gates.a.holdNextWrite(Self.isHeader)
        let retryA = Task { try await a.send("ann", chatId: chat, clientId: "p", text: "two", retry: true) }
        await heldHeaderA.reached()
        let heldCloseB = gates.b.holdNextWrite(Self.isOpening)
        let sendB = Task { try await b.send("bob", chatId: chat, clientId: "b1", text: "from b") }
        await heldCloseB.reached()

        heldP.release()
        await #expect(throws: ChatError.self) { try await sendP.value }
        heldHeaderA.release()
        let answered: SendAck? = try? await retryA.value
        heldCloseB.release()
        acks["b1"] = try await sendB.value
        acks["p"] = answered
        // The device retries p until acknowledged.
        if acks["p"] == nil {
            acks["p"] = try await b.send("ann", chatId: chat, clientId: "p", text: "two", retry: true)
        }

        let log = try await ChatLog(store: setup).messages(chatId: chat, after: 0, limit: 100)
        #expect(Set(log.compactMap(\.clientId)) == ["m1", "p", "b1"], "every acknowledged message stays: \(log)")
        for m in log { #expect(acks[m.clientId ?? ""]?.seq == m.seq, "the ack names the stored placement") }
        #expect(log.first?.prev == 0)
        #expect(zip(log, log.dropFirst()).allSatisfy { $1.prev == $0.seq }, "the prev chain is whole: \(log)")
    }

    /// A message seen only while opening is not answered from memory. As above, but a opens for
    /// another message (x) and only remembers p from its end read; its fence then fails. A resend
    /// of p without `retry` was answered "duplicate of p" from that memory, with no ring request,
    /// and b's late tombstone then retracted p.
    @Test func aMessageSeenOnlyWhileOpeningIsNotAnsweredFromMemory() async throws {
        let (setup, gates, a, b, c, chat) = try await Self.threeServers()
        var acks: [String: SendAck] = [:]
        acks["m1"] = try await c.send("ann", chatId: chat, clientId: "m1", text: "one")

        let heldP = gates.c.holdNextWrite(Self.isBatch)
        let sendP = Task { try await c.send("ann", chatId: chat, clientId: "p", text: "two") }
        await heldP.reached()
        let heldHeaderA = gates.a.holdNextWrite(Self.isHeader)
        let sendX = Task { try await a.send("bob", chatId: chat, clientId: "x", text: "from a") }
        await heldHeaderA.reached()
        let heldCloseB = gates.b.holdNextWrite(Self.isOpening)
        let sendB = Task { try await b.send("bob", chatId: chat, clientId: "b1", text: "from b") }
        await heldCloseB.reached()

        heldP.release()
        await #expect(throws: ChatError.self) { try await sendP.value }
        heldHeaderA.release()
        // a saw p while opening; its fence meets b's epoch.
        await #expect(throws: ChatError.self) { try await sendX.value }
        acks["p"] = try await a.send("ann", chatId: chat, clientId: "p", text: "two")
        heldCloseB.release()
        _ = try? await sendB.value
        for (id, who) in [("x", "bob"), ("b1", "bob")] where acks[id] == nil {
            let text = id == "x" ? "from a" : "from b"
            acks[id] = try await b.send(who, chatId: chat, clientId: id, text: text, retry: true)
        }

        let log = try await ChatLog(store: setup).messages(chatId: chat, after: 0, limit: 100)
        #expect(Set(log.compactMap(\.clientId)) == Set(acks.keys), "every acknowledged message stays: \(log)")
        for m in log { #expect(acks[m.clientId ?? ""]?.seq == m.seq, "the ack names the stored placement") }
        #expect(zip(log, log.dropFirst()).allSatisfy { $1.prev == $0.seq }, "the prev chain is whole: \(log)")
    }

    /// Servers a, b and c over one ring, each behind its own gate, and a group c created. b draws
    /// further than a from the same header: b's epoch is above a's.
    static func threeServers() async throws -> (
        setup: ChatCatalog, gates: (a: GatedStorage, b: GatedStorage, c: GatedStorage), a: ChatService,
        b: ChatService, c: ChatService, chat: Int64
    ) {
        let f = try await GatedChatFixture()
        let gates = (a: f.gate(), b: f.gate(), c: f.gate())
        let a = f.server("a", gates.a)
        let b = f.server("b", gates.b, epochStep: 5)
        let c = f.server("c", gates.c)
        let chat = try await c.createGroup("ann", title: "g", members: ["bob"]).chatId
        return (f.setup, gates, a, b, c, chat)
    }

    static let isHeader: @Sendable (Mutation) -> Bool = { m in m.rows.contains { $0.clustering == ChatLog.key(0) } }
    static let isOpening: @Sendable (Mutation) -> Bool = { !$0.header.rangeTombstones.isEmpty }
    static let isBatch: @Sendable (Mutation) -> Bool = { m in !m.rows.isEmpty && !isHeader(m) && !isOpening(m) }
}

extension LateTombstoneTests {
    /// What an opening adopts, read over more than one page of the log's end: every message above
    /// the newest one below its epoch's newest batch. Here 300 single-message epochs (each could
    /// be an unacknowledged last batch) sit on top of one two-batch epoch, so the proof is found
    /// only on the second page of 256.
    @Test func anOpeningAdoptsEverythingAboveTheNewestProvenMessageAcrossPages() async throws {
        let f = try await GatedChatFixture()
        let (memory, setup) = (f.memory, f.setup)
        let gate = f.gate()
        let chat = try await f.group()
        func message(_ seq: Int64, prev: Int64, _ n: Int) -> MessageRecord {
            MessageRecord(
                chatId: chat, seq: seq, prev: prev, messageId: "m\(n)", ts: 1, sender: "ann", text: "t\(n)",
                clientId: "c\(n)")
        }
        // Epoch 1: batch [1, 2], then batch [3]. Epochs 2…301: one message each.
        var prev: Int64 = 0
        var n = 0
        var written: [[MessageRecord]] = []
        for batch in [[1, 2], [3]] as [[Int64]] {
            var ms: [MessageRecord] = []
            for i in batch {
                let seq = ChatLog.firstSeq(ofEpoch: 1) - 1 + i
                ms.append(message(seq, prev: prev, n))
                prev = seq
                n += 1
            }
            written.append(ms)
        }
        for e in Int64(2)...301 {
            written.append([message(ChatLog.firstSeq(ofEpoch: e), prev: prev, n)])
            prev = ChatLog.firstSeq(ofEpoch: e)
            n += 1
        }
        for ms in written {
            try await memory.write(ChatLog.batch(chatId: chat, messages: ms, nowSeconds: 0), consistency: .quorum)
        }
        try await ChatLog(store: setup).putHeader(chatId: chat, .init(epoch: 301, owner: "old"))

        let service = f.server("new", gate)
        let ack = try await service.send("bob", chatId: chat, clientId: "x", text: "next")
        let opening = try #require(gate.writes.first { !$0.header.rangeTombstones.isEmpty })
        let adopted = opening.rows.compactMap { r -> Int64? in
            guard case .int64(let s)? = ClusteringKey.components(of: r.clustering)?.first else { return nil }
            return s
        }
        // The 300 single-message epochs and epoch 1's newest batch ([3]); not 1 or 2.
        let expected = ([written[1][0].seq] + (2...301).map { ChatLog.firstSeq(ofEpoch: $0) }).sorted()
        #expect(adopted == expected)
        #expect(
            opening.rows.allSatisfy {
                $0.fragment.liveness?.timestamp == ChatLog.openingWriteTime(epoch: ack.seq >> 32)
            })
        // What was adopted is unchanged, and the chain runs on from the newest.
        let log = try await ChatLog(store: setup).messages(chatId: chat, after: 0, limit: 1000)
        #expect(log.count == 304)
        #expect(zip(log, log.dropFirst()).allSatisfy { $1.prev == $0.seq })
        #expect(log.dropLast().map(\.text) == written.flatMap { $0 }.map(\.text))
    }
}
