import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import Testing

@testable import ConfabNode

/// Concurrent joiners: one goes first by a deterministic rule, the rest follow, none stays
/// JOINING (the livelock of two joiners each waiting for the other).
@Suite(.serialized) struct BootstrapOrderTests {
    private func joining(_ id: String, port: Int, tokens: [Int64]) -> EndpointState {
        EndpointState(
            node: NodeID(id: id, host: "127.0.0.1", port: port), heartbeat: HeartbeatState(generation: 1, version: 5),
            applicationStates: [
                .status: VersionedValue(NodeStatus.joining.rawValue, version: 2),
                .tokens: VersionedValue(tokens.map(String.init).joined(separator: ","), version: 2),
            ])
    }

    func blocker(_ local: NodeID, _ states: [EndpointState], alive: Set<NodeID>) -> EndpointState? {
        MoveView(local: local, states: states, isAlive: { alive.contains($0) }, ring: TokenRing()).bootstrapBlocker
    }

    @Test func twoJoinersWithTokensAgreeWhoStreamsFirst() {
        let a = joining("a", port: 1, tokens: [10, 20])
        let b = joining("b", port: 2, tokens: [30, 40])
        let alive: Set<NodeID> = [a.node, b.node]
        // The smaller id streams now; the larger waits for it. Before the fix each waited for
        // the other, so neither ever streamed.
        #expect(blocker(a.node, [a, b], alive: alive) == nil)
        #expect(blocker(b.node, [a, b], alive: alive)?.node == a.node)
        // A dead smaller joiner does not hold the other back.
        #expect(blocker(b.node, [a, b], alive: [b.node]) == nil)
    }

    @Test func twoNodesStartedTogetherBothBecomeNormal() async throws {
        try await startJoinersTogether(2)
    }

    @Test func threeNodesStartedTogetherAllBecomeNormal() async throws {
        try await startJoinersTogether(3)
    }

    private func startJoinersTogether(_ count: Int) async throws {
        let seed = try await InProcessNode.start { fastRing(&$0, seeds: []) }
        let joiners = try await withThrowingTaskGroup(of: InProcessNode.self) { group in
            for _ in 0..<count {
                group.addTask { try await InProcessNode.start { fastRing(&$0, seeds: [seed.address]) } }
            }
            var started: [InProcessNode] = []
            for try await node in group { started.append(node) }
            return started
        }
        let nodes = [seed] + joiners
        for node in nodes {
            let client = ConfabClient.forTests(nodes: [node.address])
            try await eventually("\(nodes.count) normal nodes seen by \(node.address)", within: .seconds(60)) {
                try await ringIsNormal(client, count: nodes.count)
            }
        }
        for node in nodes.reversed() { try await node.stop() }
    }
}
