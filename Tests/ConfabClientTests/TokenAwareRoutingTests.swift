import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire
import Testing

@Suite struct TokenAwareRoutingTests {
    func status(rf: Int) -> RingStatus {
        // Three nodes, each owning one third of the ring.
        let third = Int64.max / 3
        let tokens: [[Int64]] = [[-third], [third], [Int64.max - 1]]
        return RingStatus(
            clusterName: "c", replicationFactor: rf,
            nodes: (0..<3).map { i in
                RingNodeStatus(
                    state: "normal", isUp: true, id: "n\(i)", host: "127.0.0.1", port: UInt16(7400 + i),
                    loadBytes: 0, tokens: 1, ownership: 1, tokenValues: tokens[i])
            })
    }

    @Test func replicasOfThePartitionComeFirst() {
        let routing = TokenAwareRouting()
        let configured = [NodeAddress(host: "127.0.0.1", port: 7402), NodeAddress(host: "127.0.0.1", port: 7400)]
        routing.update(from: status(rf: 1))
        var ring = TokenRing()
        for n in status(rf: 1).nodes {
            try? ring.add(NodeID(id: n.id, host: n.host, port: Int(n.port)), tokens: n.tokenValues.map(Token.init))
        }
        for chat in 0..<200 {
            let key = TestMessages.partitionKey(chatId: Int64(chat))
            let owner = ring.replicas(for: Token(partitionKey: key), replicationFactor: 1)[0].address
            let plan = routing.plan(partitionKey: key, nodes: configured)
            #expect(plan.first == owner, "chat \(chat)")
            #expect(Set(plan).isSuperset(of: configured))
        }
    }

    @Test func withoutATopologyItFallsBackToEveryConfiguredNode() {
        let routing = TokenAwareRouting()
        let configured = [NodeAddress(host: "127.0.0.1", port: 1), NodeAddress(host: "127.0.0.1", port: 2)]
        #expect(Set(routing.plan(partitionKey: [1, 2, 3], nodes: configured)) == Set(configured))
        routing.update(from: status(rf: 3))
        #expect(Set(routing.plan(partitionKey: nil, nodes: configured)) == Set(configured))
        // RF 3 over 3 nodes: every ring member is a replica and leads, the configured nodes follow.
        let plan = routing.plan(partitionKey: [1], nodes: configured)
        #expect(Set(plan.prefix(3)) == Set((0..<3).map { NodeAddress(host: "127.0.0.1", port: 7400 + $0) }))
        #expect(Array(plan.dropFirst(3)).sorted() == configured.sorted())
    }
}
