import ConfabClient
import ConfabNode
import ConfabRing
import ConfabWire
import Testing

/// A coordinator reads the ring from a published snapshot, not through its cluster actor. These
/// check that the snapshot changes when a peer is marked unreachable, before the request that
/// marked it retries, not on the next timer tick.
@Suite(.serialized) struct UnreachableReplicaTests {
    /// An ALL read that meets a stopped replica marks it unreachable and retries once; the retry
    /// must already count it as down and answer `unavailable` (nothing sent). Were the mark
    /// published late, the retry would ask the stopped replica again and fail with a server error.
    /// The failure detector is held off (a phi threshold it never reaches here), so only the mark
    /// can make the node count the replica as down.
    @Test func aReadThatMeetsAStoppedReplicaSeesItDownOnItsRetry() async throws {
        func configure(_ c: inout NodeConfiguration, seeds: [NodeAddress]) {
            fastRing(&c, seeds: seeds)
            c.phiConvictThreshold = 1_000_000
        }
        let n1 = try await InProcessNode.start { configure(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { configure(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { configure(&$0, seeds: [n1.address]) }
        let client = ConfabClient.forTests(nodes: [n1.address])
        try await eventually("n1 sees 3 normal nodes") { try await ringIsNormal(client, count: 3) }
        let chat: Int64 = 4242
        try await client.post(chatId: chat, sender: "a", text: "before the stop", consistency: .all)
        try await n3.stop()

        do {
            _ = try await client.history(chatId: chat, consistency: .all)
            Issue.record("an ALL read succeeded with a replica stopped")
        } catch let e as WireError {
            #expect(e.code == .unavailable, "\(e)")
            #expect(e.message.contains("only 2 alive"), "\(e.message)")
        }
        // The mark holds for the next requests too: QUORUM reads and writes go on without it.
        let m = try await client.post(chatId: chat, sender: "a", text: "after the stop")
        #expect(try await client.history(chatId: chat).contains { $0.messageId == m.messageId })
        let status = try await client.status()
        #expect(status.nodes.count == 3)

        await client.shutdown()
        for n in [n1, n2] { try await n.stop() }
    }
}
