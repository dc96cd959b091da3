import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

/// `confab repair`, `flush` and `compact` against three in-process nodes (RF 3, 100 ms gossip):
/// replicas made to diverge by writes sent to some of them only converge through a repair
/// coordinated over the client protocol, after which every node's own data (ONE reads it
/// coordinates) and its Merkle tree are identical; flush and compact succeed on every node.
@Suite(.serialized) struct RepairClusterTests {
    /// Sends `mutation` as a ReplicaWrite straight to `address`: it lands on that replica only
    /// (no coordinator, no hints) — how the test makes replicas diverge.
    func writeToReplicaOnly(_ mutation: Mutation, at address: NodeAddress) async throws {
        let connection = try await NodeConnection.connect(
            to: address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
            requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
        let reply = try await connection.request(
            .replicaWrite(
                WriteRequest(
                    keyspace: "confab", table: "messages", mutation: mutation, consistency: .one)), timeout: .seconds(5)
        )
        #expect(reply == .replicaWriteAck)
        await connection.close()
    }

    @Test func repairConvergesDivergedReplicasAndFlushCompactRunEverywhere() async throws {
        let n1 = try await InProcessNode.start { fastRing(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let nodes = [n1, n2, n3]
        let clients = nodes.map { ConfabClient.forTests(nodes: [$0.address], timeout: .seconds(30)) }
        for c in clients {
            try await eventually("3 normal nodes") { try await ringIsNormal(c, count: 3) }
        }

        // Data everywhere, at QUORUM, over several chats (so several ranges hold data).
        let chats: [Int64] = Array(1...8)
        for i in 0..<40 {
            try await clients[i % 3].post(chatId: chats[i % chats.count], sender: "u", text: "common \(i)")
        }
        // Flush through one node to all (scope ring), then compact each node on its own, so the
        // diverging writes below sit in memtables on top of SSTables.
        let flushed = try await clients[0].admin(.flush, scope: .ring, at: n1.address, timeout: .seconds(30))
        #expect(flushed.results.count == 3 && flushed.results.allSatisfy { $0.error == nil }, "\(flushed)")
        #expect(Set(flushed.results.map(\.nodeID)) == Set(nodes.compactMap(\.node.nodeID)))
        for (c, n) in zip(clients, nodes) {
            let compacted = try await c.admin(.compact, at: n.address, timeout: .seconds(30))
            #expect(compacted.results.count == 1 && compacted.results[0].error == nil, "\(compacted)")
            #expect(compacted.results[0].nodeID == n.node.nodeID)
        }

        // Diverge: n3 misses 12 messages, n1 alone has 3, n2 alone has a newer edit of one.
        var missedByN3: [String] = []
        for i in 0..<12 {
            let id = "missed-by-n3-\(i)"
            let m = TestMessages.mutation(
                chatId: chats[i % chats.count], timestamp: 1_000 + Int64(i), messageId: id,
                sender: "x", body: "n1+n2 only", writeTime: 1_700_000_000_000_000)
            try await writeToReplicaOnly(m, at: n1.address)
            try await writeToReplicaOnly(m, at: n2.address)
            missedByN3.append(id)
        }
        for i in 0..<3 {
            let m = TestMessages.mutation(
                chatId: chats[(i * 3) % chats.count], timestamp: 2_000 + Int64(i),
                messageId: "only-on-n1-\(i)", sender: "y", body: "n1 only",
                writeTime: 1_700_000_000_000_000)
            try await writeToReplicaOnly(m, at: n1.address)
        }
        let edit = TestMessages.mutation(
            chatId: chats[0], timestamp: 1_000, messageId: "missed-by-n3-0", sender: "x",
            body: "edited on n2", writeTime: 1_700_000_000_000_001)
        try await writeToReplicaOnly(edit, at: n2.address)

        func ownData(_ i: Int) async throws -> [Int64: [String: String]] {
            var out: [Int64: [String: String]] = [:]
            for chat in chats {
                let h = try await clients[i].history(chatId: chat, limit: 1000, consistency: .one)
                out[chat] = Dictionary(uniqueKeysWithValues: h.map { ($0.messageId, $0.text) })
            }
            return out
        }
        #expect(try await ownData(0) != ownData(2))
        let fullRing = TokenRange.fullRing
        let before = try await nodes.asyncMap {
            try await clients[0].merkleTree(at: $0.address, range: fullRing, keyspace: "confab", table: "messages")
        }
        #expect(before[0].leaves != before[2].leaves)
        #expect(before[0].leaves != before[1].leaves)

        // Repair through n2: every range is replicated by all three nodes.
        let report = try await clients[1].repair(at: n2.address, timeout: .seconds(60))
        // Every table is compared; only confab.messages holds data.
        let messages = report.ranges.filter { $0.keyspace == "confab" && $0.table == "messages" }
        #expect(messages.count == 48)
        #expect(report.ranges.count == 48 * TestSchema.registry.tables.count)
        #expect(report.ranges.allSatisfy { $0.replicas == 3 })
        #expect(report.rangesOutOfSync > 0 && report.rangesOutOfSync < 48, "\(report.rangesOutOfSync)")
        #expect(messages.filter { $0.subrangesStreamed > 0 }.count == report.rangesOutOfSync)
        #expect(report.rowsStreamed > 0)
        #expect(report.subrangesStreamed > 0)

        // Every node now holds the same data: its own ONE reads and its Merkle tree agree.
        let data = try await [ownData(0), ownData(1), ownData(2)]
        #expect(data[0] == data[1] && data[1] == data[2])
        let all = data[0].values.reduce(into: [String: String]()) { $0.merge($1) { a, _ in a } }
        #expect(all.count == 40 + 12 + 3)
        #expect(all["missed-by-n3-0"] == "edited on n2")
        let after = try await nodes.asyncMap {
            try await clients[0].merkleTree(at: $0.address, range: fullRing, keyspace: "confab", table: "messages")
        }
        #expect(after[0].leaves == after[1].leaves && after[1].leaves == after[2].leaves)
        #expect(after[0].comparableRoot == after[2].comparableRoot)
        #expect(after[0].rowCount > 0)

        // A second repair finds nothing to do.
        let again = try await clients[0].repair(at: n1.address, timeout: .seconds(60))
        #expect(again.rangesOutOfSync == 0 && again.subrangesStreamed == 0)

        // A down replica fails the repair with a clear error.
        try await n3.stop()
        do {
            _ = try await clients[0].repair(at: n1.address, timeout: .seconds(30))
            Issue.record("a repair with a replica down succeeded")
        } catch let e as WireError {
            #expect(e.code == .unavailable, "\(e)")
            #expect(e.message.contains("repair") && e.message.contains("every replica"), "\(e.message)")
        }
        // Admin with scope ring reports the down node as failed, the others as done.
        let partial = try await clients[0].admin(.flush, scope: .ring, at: n1.address, timeout: .seconds(30))
        #expect(partial.results.filter { $0.error == nil }.count >= 2)

        for c in clients { await c.shutdown() }
        for n in [n1, n2] { try await n.stop() }
    }
}

extension MerkleTreeLeaves {
    /// The root of the tree as the repair coordinator compares it.
    var comparableRoot: MerkleTree.Hash { tree()!.rootHash }
}

extension Array where Element: Sendable {
    func asyncMap<T>(_ body: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await body(e)) }
        return out
    }
}
