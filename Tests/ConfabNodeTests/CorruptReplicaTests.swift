import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

/// One corrupt SSTable block on one replica is that replica failing: it quarantines the table and
/// answers without its rows, and QUORUM reads of the partition succeed through every
/// coordinator (the healthy replicas supply the rows, read repair restores them).
// In RingClusterTests (serialized): three-node rings started in parallel with the other cluster
// suites starve each other of the two cores and miss the 15 s ring-formation deadline.
extension RingClusterTests {
    @Test func quorumReadsSucceedFromTheHealthyReplicasWhenOneHasACorruptBlock() async throws {
        let chat: Int64 = 5151
        let n1 = try await InProcessNode.start {
            fastRing(&$0, seeds: [])
            // The flipped byte must be met by a read, not hidden behind the block cache.
            $0.cacheFlushedTables = false
        }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        do {
            let nodes = [n1, n2, n3]
            for n in nodes {
                let c = n.client()
                try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
                await c.shutdown()
            }
            let writer = ConfabClient.forTests(nodes: [n1.address])
            for i in 0..<20 {
                try await writer.write(
                    TestMessages.mutation(
                        chatId: chat, timestamp: Int64(i), messageId: "m\(i)", sender: "s",
                        body: "b\(i)", writeTime: 1_000 + Int64(i)), consistency: .all)
            }
            // n1 flushes to one SSTable, whose first data block then gets a flipped byte.
            _ = try await writer.admin(.flush, at: n1.address, timeout: .seconds(30))
            let engineDirectory = n1.node.configuration.engineDirectory
            let tables = try FileManager.default.contentsOfDirectory(atPath: engineDirectory)
                .filter { $0.hasPrefix("sst-") && $0.hasSuffix(".db") }
            try #require(tables.count == 1, "\(tables)")
            let victim = (engineDirectory as NSString).appendingPathComponent(tables[0])
            let handle = try #require(FileHandle(forUpdatingAtPath: victim))
            try handle.seek(toOffset: 10)
            let old = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: 10)
            try handle.write(contentsOf: Data([old ^ 0xFF]))
            try handle.close()

            // n1's own answer for the partition lacks every row (the precondition of this test):
            // meeting the corrupt block, it quarantined the table and answers without it.
            let query = TestMessages.latest(chatId: chat, limit: 100)
            let connection = try await NodeConnection.connect(
                to: n1.address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
                requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
            let table = TestSchema.messages
            let reply = try await connection.request(
                .replicaRead(ReadRequest(query, schema: table, consistency: .one)),
                timeout: .seconds(5))
            guard case .replicaReadResponse(.data(let own)) = reply else {
                Issue.record("n1 answered \(reply)")
                return
            }
            #expect(own.rows.isEmpty, "n1 served \(own.rows.count) rows from a corrupt table")
            #expect(!FileManager.default.fileExists(atPath: victim), "the corrupt table is still in the read path")
            await connection.close()

            for n in nodes {
                let client = ConfabClient.forTests(nodes: [n.address])
                for _ in 0..<3 {
                    let rows = try await client.read(query, consistency: .quorum).rows
                    #expect(rows.count == 20, "QUORUM read through \(n.address)")
                }
                await client.shutdown()
            }
            await writer.shutdown()
            for n in nodes { try await n.stop() }
        } catch {
            // A node left running gossips on, and a later ring reusing its port meets it.
            for n in [n1, n2, n3] { try? await n.stop() }
            throw error
        }
    }

    /// After a corrupt block is met on a replica, that replica quarantines the table (moved to
    /// `quarantine/`, out of its manifest) instead of failing on it for good, and `confab repair`
    /// restores the lost rows from the healthy replicas: afterwards the replica's own data (a
    /// ReplicaRead, answered from its engine alone) holds every row of every chat again.
    @Test func repairRestoresTheRowsOfAQuarantinedCorruptTable() async throws {
        let chats: [Int64] = Array(6100..<6110)
        let n1 = try await InProcessNode.start {
            fastRing(&$0, seeds: [])
            // The flipped byte must be met by a read, not hidden behind the block cache.
            $0.cacheFlushedTables = false
        }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        do {
            let nodes = [n1, n2, n3]
            for n in nodes {
                let c = n.client()
                try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
                await c.shutdown()
            }
            let writer = ConfabClient.forTests(nodes: [n1.address])
            for chat in chats {
                for i in 0..<10 {
                    try await writer.write(
                        TestMessages.mutation(
                            chatId: chat, timestamp: Int64(i), messageId: "m\(chat)-\(i)", sender: "s",
                            body: "b\(i)", writeTime: 1_000 + Int64(i)), consistency: .all)
                }
            }
            // n1 flushes everything to one SSTable, whose first data block then gets a flipped byte.
            _ = try await writer.admin(.flush, at: n1.address, timeout: .seconds(30))
            let engineDirectory = n1.node.configuration.engineDirectory
            let tables = try FileManager.default.contentsOfDirectory(atPath: engineDirectory)
                .filter { $0.hasPrefix("sst-") && $0.hasSuffix(".db") }
            try #require(tables.count == 1, "\(tables)")
            let victim = (engineDirectory as NSString).appendingPathComponent(tables[0])
            let handle = try #require(FileHandle(forUpdatingAtPath: victim))
            try handle.seek(toOffset: 10)
            let old = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: 10)
            try handle.write(contentsOf: Data([old ^ 0xFF]))
            try handle.close()

            // A QUORUM read of one chat through n1 still answers every row.
            let client1 = ConfabClient.forTests(nodes: [n1.address])
            #expect(
                try await client1.read(TestMessages.latest(chatId: chats[0], limit: 100), consistency: .quorum).rows
                    .count == 10)

            // Repair through n1 succeeds (its own Merkle tree quarantines the bad table first).
            let report = try await writer.repair(at: n1.address, timeout: .seconds(60))
            #expect(report.rowsStreamed > 0, "repair streamed nothing: \(report)")
            let quarantined = try FileManager.default.contentsOfDirectory(
                atPath: (engineDirectory as NSString).appendingPathComponent("quarantine"))
            #expect(quarantined == [tables[0]], "quarantine holds \(quarantined)")
            #expect(!FileManager.default.fileExists(atPath: victim))
            // Every node's status names the quarantine (gossiped), so an operator asking any
            // node learns which one holds a damaged table.
            let client2 = n2.client()
            try await eventually("n2's status shows n1's quarantined table", within: .seconds(30)) {
                try await client2.status().nodes.first { $0.port == UInt16(n1.address.port) }?.quarantinedTables == 1
            }
            await client2.shutdown()

            // n1 alone holds every row of every chat again.
            let connection = try await NodeConnection.connect(
                to: n1.address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
                requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
            for chat in chats {
                let reply = try await connection.request(
                    .replicaRead(
                        ReadRequest(
                            TestMessages.latest(chatId: chat, limit: 100), schema: TestSchema.messages,
                            consistency: .one)), timeout: .seconds(5))
                guard case .replicaReadResponse(.data(let r)) = reply else {
                    Issue.record("chat \(chat): n1 answered \(reply)")
                    continue
                }
                #expect(r.rows.count == 10, "chat \(chat): n1 holds \(r.rows.count) of 10 rows after repair")
            }
            await connection.close()
            for c in [writer, client1] { await c.shutdown() }
            for n in nodes { try await n.stop() }
        } catch {
            for n in [n1, n2, n3] { try? await n.stop() }
            throw error
        }
    }
}
