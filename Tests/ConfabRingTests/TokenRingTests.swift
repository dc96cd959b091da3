import ConfabEngine
import Testing

@testable import ConfabRing

@Suite struct TokenRingTests {
    let a = Fixtures.node(1), b = Fixtures.node(2), c = Fixtures.node(3)

    func ring() throws -> TokenRing {
        try TokenRing([a: [Token(-100), Token(200)], b: [Token(0), Token(300)], c: [Token(100)]])
    }

    @Test func chatIdTokenMatchesCassandra() {
        // cassandra-driver: Murmur3Token.hash_fn(struct.pack('>q', 42))
        #expect(Token(partitionKey: TestMessages.partitionKey(chatId: 42)).value == 8_623_491_988_607_824_794)
        #expect(Token(partitionKey: Array("hello".utf8)).value == -3_758_069_500_696_749_310)
    }

    @Test func primaryOwnerIsFirstTokenClockwise() throws {
        let r = try ring()
        #expect(r.primaryOwner(of: Token(-100)) == a)  // a token owns itself
        #expect(r.primaryOwner(of: Token(-99)) == b)
        #expect(r.primaryOwner(of: Token(1)) == c)
        #expect(r.primaryOwner(of: Token(250)) == b)
        #expect(r.primaryOwner(of: Token(301)) == a)  // past the last token: wraps to the first
        #expect(r.primaryOwner(of: .maximum) == a)
        #expect(r.primaryRange(containing: Token(301)) == TokenRange(start: Token(300), end: Token(-100)))
    }

    @Test func replicasAreNextDistinctNodesClockwise() throws {
        let r = try ring()
        #expect(r.replicas(for: Token(-50), replicationFactor: 2) == [b, c])
        #expect(r.replicas(for: Token(150), replicationFactor: 3) == [a, b, c])
        #expect(r.replicas(for: Token(250), replicationFactor: 3) == [b, a, c])  // skips b's second token
        #expect(r.replicas(for: Token(250), replicationFactor: 5) == [b, a, c])  // capped at the node count
    }

    @Test func rangesWrapAround() {
        let w = TokenRange(start: Token(100), end: Token(-100))
        #expect(w.contains(.maximum) && w.contains(.minimum) && w.contains(Token(-100)))
        #expect(!w.contains(Token(100)) && !w.contains(Token(0)))
        #expect(
            w.unwrapped() == [
                TokenRange(start: .minimum, end: Token(-100)), TokenRange(start: Token(100), end: .maximum),
            ])
        #expect(TokenRange.fullRing.contains(Token(5)))
        let single = try! TokenRing([a: [Token(7)]])
        #expect(single.primaryRange(containing: Token(-3))!.isFullRing)
        #expect(single.ownership()[a] == 1.0)
    }

    @Test func ownershipSumsToOneAndEffectiveToRF() throws {
        let r = try ring()
        let own = r.ownership()
        #expect(abs(own.values.reduce(0, +) - 1) < 1e-12)
        let eff = r.effectiveOwnership(replicationFactor: 2)
        #expect(abs(eff.values.reduce(0, +) - 2) < 1e-12)
        #expect(r.effectiveOwnership(replicationFactor: 3).values.allSatisfy { abs($0 - 1) < 1e-12 })
    }

    @Test func replicatedRangesCoverEveryTokenTheNodeReplicates() throws {
        let r = try ring()
        var rng = SplitMix64(seed: 7)
        for rf in 1...3 {
            for node in [a, b, c] {
                let ranges = r.replicatedRanges(of: node, replicationFactor: rf)
                for _ in 0..<500 {
                    let t = Token(Int64(bitPattern: rng.next()) % 400)
                    let isReplica = r.replicas(for: t, replicationFactor: rf).contains(node)
                    #expect(ranges.contains { $0.contains(t) } == isReplica, "rf \(rf) \(node) token \(t)")
                }
            }
        }
        #expect(r.replicatedRanges(of: a, replicationFactor: 3) == [TokenRange(start: Token(300), end: Token(300))])
        #expect(
            r.primaryRanges(of: a) == [
                TokenRange(start: Token(300), end: Token(-100)), TokenRange(start: Token(100), end: Token(200)),
            ])
    }

    @Test func conflictingTokensAreRejected() throws {
        var r = try ring()
        #expect(throws: RingError.self) { try r.add(Fixtures.node(4), tokens: [Token(0)]) }
        #expect(r.nodeCount == 3)
        r.remove(b)
        #expect(r.primaryOwner(of: Token(-50)) == c)
    }
}
