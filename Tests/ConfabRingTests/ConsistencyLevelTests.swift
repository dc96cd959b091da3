import Testing

@testable import ConfabRing

@Suite struct ConsistencyLevelTests {
    @Test func blockForMatchesCassandra() {
        #expect(ConsistencyLevel.quorum.blockFor(replicationFactor: 3) == 2)
        #expect(ConsistencyLevel.quorum.blockFor(replicationFactor: 5) == 3)
        #expect(ConsistencyLevel.all.blockFor(replicationFactor: 3) == 3)
        #expect(ConsistencyLevel.one.blockFor(replicationFactor: 3) == 1)
        #expect(ConsistencyLevel.two.blockFor(replicationFactor: 3) == 2)
    }
}
