import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

/// Paging a partition through a three-node ring to its end, with deletions that only some
/// replicas received: each page but the last is full, and the pages together are exactly the
/// rows a merge of the replicas leaves live.
// In RingClusterTests (serialized): three-node rings started in parallel with the other cluster
// suites starve each other of the two cores and miss the 15 s ring-formation deadline.
extension RingClusterTests {
    @Test func pagesAPartitionToTheEndOverReplicasThatDisagree() async throws {
        let chat: Int64 = 4242
        let n1 = try await InProcessNode.start { fastRing(&$0, seeds: []) }
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
            let count = 30
            for i in 0..<count {
                try await writer.write(
                    TestMessages.mutation(
                        chatId: chat, timestamp: Int64(i), messageId: "m\(i)", sender: "s",
                        body: "b\(i)", writeTime: 1_000 + Int64(i)), consistency: .all)
            }
            // Deletions that reached n2 and n3 but not n1 (replica writes, no coordinator, no hints):
            // runs of deleted rows longer than a page, so n1's answers stop at the limit among rows the
            // others deleted.
            let deleted = Set([1, 2, 3, 4, 5, 6, 7, 12, 13, 20, 21, 22, 23, 24, 25, 26])
            let deletions = Mutation(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: chat),
                rows: deleted.sorted().map { i in
                    Mutation.Row(
                        clustering: TestMessages.clustering(timestamp: Int64(i), messageId: "m\(i)"),
                        fragment: RowFragment(
                            deletion: DeletionTime(
                                timestamp: 5_000, localDeletionTime: Int64(Date().timeIntervalSince1970))))
                })
            for n in [n2, n3] {
                let connection = try await NodeConnection.connect(
                    to: n.address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
                    requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
                let reply = try await connection.request(
                    .replicaWrite(
                        WriteRequest(
                            keyspace: "confab", table: "messages", mutation: deletions, consistency: .one)),
                    timeout: .seconds(5))
                #expect(reply == .replicaWriteAck)
                await connection.close()
            }
            let expected = (0..<count).filter { !deleted.contains($0) }
            for (coordinator, reversed, consistency, limit) in [
                (n1, false, ConsistencyLevel.quorum, 3), (n1, true, .all, 2),
                (n2, false, .all, 4), (n3, true, .quorum, 1),
            ] {
                let client = ConfabClient.forTests(nodes: [coordinator.address])
                var query = SliceQuery(
                    table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: chat),
                    reversed: reversed, limit: limit)
                var pages: [ReplicaRows] = []
                repeat {
                    let page = try await client.read(query, consistency: consistency)
                    pages.append(page)
                    query.cursor = page.cursor
                    try #require(pages.count <= count + 1, "paging does not end")
                } while query.cursor != nil
                let context = "via \(coordinator.address) \(consistency) limit \(limit) reversed \(reversed)"
                let got = pages.flatMap(\.rows).map {
                    TestMessages.message(from: ResultRow(clustering: $0.clustering, cells: $0.fragment.cells))!
                        .timestamp
                }
                #expect(got == (reversed ? expected.reversed() : expected).map(Int64.init), "\(context)")
                #expect(
                    pages.dropLast().allSatisfy { $0.rows.count == limit }, "\(context): \(pages.map(\.rows.count))")
                #expect(pages.last!.rows.count < limit, "\(context)")
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
}
