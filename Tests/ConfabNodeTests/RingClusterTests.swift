import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

/// Settings that make a ring react in test time: gossip every 100 ms (conviction after about
/// 2 s of silence). The request timeouts are 5 s, not 1 s: a replica's first write into a fresh
/// ring syncs its commit log, and beside a parallel build on two cores that sync alone has taken
/// over a second (two CI runs failed that way). Tests that wait for a timeout allow for 5 s.
func fastRing(_ c: inout NodeConfiguration, seeds: [NodeAddress]) {
    c.seeds = seeds
    c.replicationFactor = 3
    c.gossipInterval = .milliseconds(100)
    c.writeTimeout = .seconds(5)
    c.readTimeout = .seconds(5)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes. The default is generous:
/// a ring of three in-process nodes forms in a few seconds on a quiet machine, but two joins
/// (each confirmed by every member, then the write timeout) take longer beside a full build.
func eventually(
    _ what: String, within timeout: Duration = .seconds(60),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ProcessTestError("timed out after \(timeout): \(what)")
}

/// True when `client`'s node sees `count` members, all normal and up.
func ringIsNormal(_ client: ConfabClient, count: Int) async throws -> Bool {
    let s = try await client.status()
    return s.nodes.count == count && s.nodes.allSatisfy { $0.state == "normal" && $0.isUp }
}

@Suite(.serialized) struct RingClusterTests {
    @Test func threeNodeRingReplicatesFailsOverHintsAndRepairs() async throws {
        let chat: Int64 = 777
        // Gossip converges: every node sees three normal members.
        let n1 = try await InProcessNode.start { fastRing(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let d3 = TempDirectory()
        var n3 = try await InProcessNode.start(directory: d3) { fastRing(&$0, seeds: [n1.address]) }
        let port3 = n3.address.port
        let nodes = [n1, n2, n3]
        for n in nodes {
            let c = n.client()
            try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
            let status = try await c.status()
            #expect(status.replicationFactor == 3)
            #expect(status.nodes.allSatisfy { $0.tokens == 16 && abs($0.ownership - 1) < 1e-6 }, "\(status)")
            await c.shutdown()
        }

        // RF 3 QUORUM writes and reads, coordinated by every node in turn.
        let clients = nodes.map { ConfabClient.forTests(nodes: [$0.address]) }
        var posted: Set<String> = []
        for i in 0..<30 {
            let m = try await clients[i % 3].post(chatId: chat, sender: "u\(i % 3)", text: "message \(i)")
            posted.insert(m.messageId)
        }
        for c in clients {
            let h = try await c.history(chatId: chat, limit: 1000, consistency: .quorum)
            #expect(Set(h.map(\.messageId)) == posted)
        }

        // One node stopped: QUORUM still works; ALL fails with `unavailable` once the node is
        // convicted (`timeout` before that; each such attempt takes the 5 s write timeout).
        let n3ID = try #require(n3.node.nodeID)
        try await n3.stop()
        let survivors = ConfabClient.forTests(nodes: [n1.address, n2.address])
        var missed: Set<String> = []
        for i in 0..<20 {
            let m = try await survivors.post(chatId: chat, sender: "s", text: "while n3 is down \(i)")
            missed.insert(m.messageId)
        }
        posted.formUnion(missed)
        #expect(Set(try await survivors.history(chatId: chat, limit: 1000).map(\.messageId)) == posted)
        var sawUnavailable = false
        let allClient = ConfabClient.forTests(nodes: [n1.address])
        let until = ContinuousClock.now + .seconds(30)
        while !sawUnavailable, ContinuousClock.now < until {
            do {
                try await allClient.post(chatId: chat, sender: "s", text: "at ALL", consistency: .all)
                Issue.record("an ALL write succeeded with a replica down")
            } catch let e as WireError {
                #expect(e.code == .unavailable || e.code == .timeout, "\(e)")
                if e.code == .unavailable {
                    sawUnavailable = true
                    #expect(e.message.contains("3 replica(s) required but only 2 alive"), "\(e.message)")
                }
            }
        }
        #expect(sawUnavailable)

        // Hints were recorded for n3 (the write timeout lets the last ones land).
        try await eventually("hints for n3", within: .seconds(30)) {
            await n1.node.pendingHints(for: n3ID) + n2.node.pendingHints(for: n3ID) >= missed.count
        }

        // Restart n3 on its port: it comes back NORMAL with its persisted tokens, hints replay,
        // and its own data (ONE reads coordinated by n3, answered from its engine) converges.
        n3 = try await InProcessNode.start(directory: d3) {
            fastRing(&$0, seeds: [n1.address])
            $0.listen = NodeAddress(host: "127.0.0.1", port: port3)
        }
        #expect(n3.node.nodeID == n3ID)
        let c3 = ConfabClient.forTests(nodes: [n3.address])
        try await eventually("n3 rejoins") { try await ringIsNormal(c3, count: 3) }
        try await eventually("hints replayed") {
            await n1.node.pendingHints(for: n3ID) + n2.node.pendingHints(for: n3ID) == 0
        }
        let ones = try await c3.history(chatId: chat, limit: 1000, consistency: .one)
        #expect(Set(ones.map(\.messageId)).isSuperset(of: posted))

        // Read repair: a write that only n1 and n2 received (sent as replica writes, bypassing
        // the coordinator and its hints) reaches n3 through a QUORUM read that n3 coordinates.
        let stale = TestMessages.mutation(
            chatId: chat, timestamp: 42, messageId: "only-on-n1-n2", sender: "x",
            body: "repair me", writeTime: 1_700_000_000_000_000)
        for n in [n1, n2] {
            let connection = try await NodeConnection.connect(
                to: n.address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
                requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
            let reply = try await connection.request(
                .replicaWrite(
                    WriteRequest(
                        keyspace: "confab", table: "messages", mutation: stale, consistency: .one)),
                timeout: .seconds(5))
            #expect(reply == .replicaWriteAck)
            await connection.close()
        }
        #expect(
            try await c3.history(chatId: chat, limit: 1000, consistency: .one).allSatisfy {
                $0.messageId != "only-on-n1-n2"
            })
        let quorum = try await c3.history(chatId: chat, limit: 1000, consistency: .quorum)
        #expect(quorum.contains { $0.messageId == "only-on-n1-n2" })
        // Blocking: the repair was applied before the QUORUM answer, so ONE on n3 sees it now.
        #expect(
            try await c3.history(chatId: chat, limit: 1000, consistency: .one).contains {
                $0.messageId == "only-on-n1-n2"
            })

        for c in clients + [survivors, allClient, c3] { await c.shutdown() }
        for n in [n1, n2, n3] { try await n.stop() }
    }
}
