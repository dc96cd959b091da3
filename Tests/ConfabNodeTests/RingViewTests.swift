import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import Testing

@testable import ConfabNode

/// A node restarted with saved tokens knows its ring before gossip arrives (issue 8, item 10):
/// from its saved ring view, or — without one — it refuses data requests until a peer answers.
/// In RingClusterTests (serialized): parallel three-node rings starve each other of the cores.
extension RingClusterTests {
    @Test func aRestartedNodeRemembersItsPeersAndNeverServesAsARingOfItself() async throws {
        let d1 = TempDirectory()
        let d2 = TempDirectory()
        let rf2: (inout NodeConfiguration, [NodeAddress]) -> Void = { c, seeds in
            fastRing(&c, seeds: seeds)
            // Two replicas of three nodes: some keys are not on n2.
            c.replicationFactor = 2
        }
        var n1 = try await InProcessNode.start(directory: d1) { rf2(&$0, []) }
        var n2 = try await InProcessNode.start(directory: d2) { rf2(&$0, [n1.address]) }
        let n3 = try await InProcessNode.start { rf2(&$0, [n1.address]) }
        let port1 = n1.address.port
        var running = [n1, n2, n3]
        do {
            for n in running {
                let c = n.client()
                try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
                await c.shutdown()
            }
            let n2ID = try #require(n2.node.nodeID)
            let c2 = ConfabClient.forTests(nodes: [n2.address])
            var ring = TokenRing()
            for s in try await c2.status().nodes {
                try ring.add(NodeID(id: s.id, host: s.host, port: Int(s.port)), tokens: s.tokenValues.map(Token.init))
            }
            func replicas(_ chat: Int64) -> [NodeID] {
                ring.replicas(for: Token(partitionKey: TestMessages.partitionKey(chatId: chat)), replicationFactor: 2)
            }
            let elsewhere = try #require(
                (1...10_000).map(Int64.init).first { !replicas($0).contains { $0.id == n2ID } })
            let onN2 = try #require((1...10_000).map(Int64.init).first { replicas($0).contains { $0.id == n2ID } })
            let otherReplicaOfOnN2 = try #require(replicas(onN2).first { $0.id != n2ID })
            await c2.shutdown()

            // Everything stops; n2 comes back alone, its peers unreachable.
            for n in running { try await n.stop() }
            running = []
            n2 = try await InProcessNode.start(directory: d2) { rf2(&$0, [n1.address]) }
            running = [n2]
            let lone = ConfabClient.forTests(nodes: [n2.address])
            // It shows the saved peers (down), not a ring of itself.
            let status = try await lone.status()
            #expect(status.nodes.count == 3, "\(status.nodes)")
            #expect(status.nodes.filter(\.isUp).map(\.id) == [n2ID], "\(status.nodes)")
            #expect(status.nodes.allSatisfy { $0.state == "normal" && $0.tokens == 16 }, "\(status.nodes)")
            // A key n2 does not replicate: both replicas are down, so ONE is unavailable — not
            // stored on n2 alone and acknowledged.
            do {
                try await lone.post(chatId: elsewhere, sender: "s", text: "not n2's key", consistency: .one)
                Issue.record("a ONE write for a key of two unreachable replicas was acknowledged by n2 alone")
            } catch let e as WireError {
                #expect(e.code == .unavailable, "\(e)")
            }
            // A key n2 replicates: stored on n2, hinted for the other (down) replica.
            try await lone.post(chatId: onN2, sender: "s", text: "n2's key", consistency: .one)
            #expect(await n2.node.pendingHints(for: otherReplicaOfOnN2.id) == 1)
            await lone.shutdown()
            try await n2.stop()
            running = []

            // Without a saved view n2 refuses data requests until a peer answers …
            try FileManager.default.removeItem(
                atPath: (d2.path as NSString).appendingPathComponent(PeerViewFile.fileName))
            n2 = try await InProcessNode.start(directory: d2) {
                rf2(&$0, [NodeAddress(host: "127.0.0.1", port: port1)])
            }
            running = [n2]
            let learning = ConfabClient.forTests(nodes: [n2.address])
            do {
                try await learning.post(chatId: onN2, sender: "s", text: "too early", consistency: .one)
                Issue.record("a node without a saved ring view served before hearing from a peer")
            } catch let e as WireError {
                #expect(e.code == .unavailable && e.message.contains("still learning its ring"), "\(e)")
            }
            // … and serves once its seed is back.
            n1 = try await InProcessNode.start(directory: d1) {
                rf2(&$0, [])
                $0.listen = NodeAddress(host: "127.0.0.1", port: port1)
            }
            running = [n2, n1]
            try await eventually("n2 serves once it heard from n1") {
                try await learning.post(chatId: onN2, sender: "s", text: "after contact", consistency: .one)
                return true
            }
            #expect(try await learning.status().nodes.count == 3)
            await learning.shutdown()
            for n in running { try await n.stop() }
        } catch {
            for n in running { try? await n.stop() }
            throw error
        }
    }

    @Test func theRingViewFileRoundTripsAndRefusesDamage() throws {
        let view = PeerViewFile(peers: [
            .init(
                node: NodeID(id: "a", host: "127.0.0.1", port: 7001), generation: 1_700_000_000, status: .normal,
                tokens: [Token(-5), Token(42)]),
            .init(node: NodeID(id: "b", host: "node-b.local", port: 7002), generation: 3, status: .leaving, tokens: []),
        ])
        let bytes = view.encoded()
        #expect(try PeerViewFile.decode(bytes, path: "v").sameBytes(as: view))
        #expect(try PeerViewFile.decode(bytes, path: "v").peers == view.peers)
        for i in [0, 4, 6, 12, bytes.count - 1] {
            var damaged = bytes
            damaged[i] ^= 0x40
            #expect(throws: NodeError.self, "byte \(i) flipped") { try PeerViewFile.decode(damaged, path: "v") }
        }
        #expect(throws: NodeError.self) { try PeerViewFile.decode(Array(bytes.dropLast()), path: "v") }
    }
}
