import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabWire
import Foundation
import Testing

/// A node that restarts with the same id on another port (issue 8, item 13) is reached at its new
/// address: its peers send it replica writes, gossip and its hints there. The node is the seed,
/// the hard case: nobody else's configuration names its new address, so its peers learn it only
/// because it contacts them (the peers from its saved ring view).
extension RingClusterTests {
    @Test func aNodeRestartedOnANewPortIsReachedAtItsNewAddress() async throws {
        let chat: Int64 = 4242
        let d1 = TempDirectory()
        var n1 = try await InProcessNode.start(directory: d1) { fastRing(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        var running = [n1, n2, n3]
        do {
            for n in running {
                let c = n.client()
                try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
                await c.shutdown()
            }
            let n1ID = try #require(n1.node.nodeID)
            let oldPort = n1.address.port
            try await n1.stop()
            running = [n2, n3]
            let c2 = ConfabClient.forTests(nodes: [n2.address])
            let c3 = ConfabClient.forTests(nodes: [n3.address])
            try await eventually("n2 and n3 see n1 down") {
                for c in [c2, c3] where try await c.status().nodes.contains(where: { $0.id == n1ID && $0.isUp }) {
                    return false
                }
                return true
            }
            // Writes n1 misses: hinted on n2 and n3.
            var posted: Set<String> = []
            for i in 0..<10 {
                posted.insert(
                    try await (i % 2 == 0 ? c2 : c3).post(chatId: chat, sender: "s", text: "while down \(i)").messageId)
            }
            try await eventually("hints for n1", within: .seconds(30)) {
                await n2.node.pendingHints(for: n1ID) + n3.node.pendingHints(for: n1ID) == posted.count
            }

            // n1 comes back on a new port (its old one stays closed).
            n1 = try await InProcessNode.start(directory: d1) { fastRing(&$0, seeds: []) }
            running = [n1, n2, n3]
            #expect(n1.node.nodeID == n1ID)
            try #require(n1.address.port != oldPort)
            let newPort = UInt16(n1.address.port)
            for c in [c2, c3] {
                try await eventually("n1 is up at its new port") {
                    try await c.status().nodes.contains { $0.id == n1ID && $0.isUp && $0.port == newPort }
                }
            }
            try await eventually("hints delivered to the new address") {
                await n2.node.pendingHints(for: n1ID) + n3.node.pendingHints(for: n1ID) == 0
            }
            // Every ALL write through n2 and n3 reaches n1 at its new address.
            for i in 0..<10 {
                posted.insert(
                    try await (i % 2 == 0 ? c2 : c3).post(
                        chatId: chat, sender: "s", text: "at ALL \(i)",
                        consistency: .all
                    ).messageId)
            }
            let c1 = ConfabClient.forTests(nodes: [n1.address])
            let onN1 = try await c1.history(chatId: chat, limit: 1000, consistency: .one)
            #expect(Set(onN1.map(\.messageId)) == posted)
            for c in [c1, c2, c3] { await c.shutdown() }
            for n in running { try await n.stop() }
        } catch {
            for n in running { try? await n.stop() }
            throw error
        }
    }
}
