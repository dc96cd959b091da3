import ConfabClient
import ConfabEngine
@testable import ConfabNode
import ConfabRing
import ConfabWire
import Foundation
import Testing

/// A write that needed a hint is acknowledged only once the hint is on disk: a coordinator that
/// crashes right after the acknowledgement must not lose the write for the replica that missed it.
@Suite(.serialized) struct HintDurabilityTests {
    @Test func aHintIsDurableWhenTheWriteIsAcknowledged() async throws {
        let chat: Int64 = 9191
        let n1 = try await InProcessNode.start { fastRing(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        for n in [n1, n2, n3] {
            let c = n.client()
            try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
            await c.shutdown()
        }
        let n3ID = try #require(n3.node.nodeID)
        try await n3.stop()
        let client = ConfabClient.forTests(nodes: [n1.address])
        try await eventually("n1 sees n3 down") {
            try await client.status().nodes.contains { $0.id == n3ID && !$0.isUp }
        }
        for i in 0..<20 {
            try await client.write(ChatMessages.mutation(chatId: chat, timestamp: Int64(i), messageId: "h\(i)", sender: "s",
                                                         body: "b\(i)", writeTime: 1_000 + Int64(i)), consistency: .quorum)
            // Read straight from n1's hint store: what a crash now would leave.
            let onDisk = try await n1.node.persistedHints().filter { $0.target.id == n3ID }
            try #require(onDisk.count == i + 1, "after write \(i) the hint store holds \(onDisk.count) hints for n3")
        }
        await client.shutdown()
        for n in [n1, n2] { try await n.stop() }
    }
}
