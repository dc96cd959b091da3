import Testing

@testable import ConfabRing

/// Bootstrap and decommission move exactly enough: after the change every key is on all of its
/// new replicas, each of which either held it already or received it from a node that had it.
@Suite struct RangeMovementTests {
    func ring(nodes: Int, seed: UInt64) throws -> TokenRing {
        var rng = SplitMix64(seed: seed)
        var ring = TokenRing()
        let allocator = TokenAllocator(tokensPerNode: 16, replicationFactor: 3)
        for i in 0..<nodes {
            try ring.add(Fixtures.node(i), tokens: allocator.allocate(for: Fixtures.node(i), in: ring, using: &rng))
        }
        return ring
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func bootstrapCoversEveryNewReplica(seed: UInt64) throws {
        let before = try ring(nodes: 3, seed: seed)
        var rng = SplitMix64(seed: seed &* 31)
        let joining = Fixtures.node(9)
        let tokens = TokenAllocator(tokensPerNode: 16, replicationFactor: 3).allocate(
            for: joining, in: before, using: &rng)
        let fetches = try RangeMovement.bootstrap(ring: before, joining: joining, tokens: tokens, replicationFactor: 3)
        var after = before
        try after.add(joining, tokens: tokens)
        for _ in 0..<5_000 {
            let key = Token(Int64.random(in: (Int64.min + 1)...Int64.max, using: &rng))
            let old = Set(before.replicas(for: key, replicationFactor: 3))
            for node in after.replicas(for: key, replicationFactor: 3) where !old.contains(node) {
                #expect(node == joining, "seed \(seed): \(node) gained \(key) without joining")
                let fetch = fetches.first { $0.range.contains(key) }
                #expect(fetch != nil, "seed \(seed): joining node never fetches \(key)")
                // Strict source: exactly the old replica that gives the key up (one node joins, so
                // exactly one of the three old replicas stops replicating it).
                let givers = old.subtracting(after.replicas(for: key, replicationFactor: 3))
                #expect(givers.count == 1, "seed \(seed): \(key) given up by \(givers.count) replicas")
                #expect(
                    fetch.map { Set($0.sources) == givers } ?? false,
                    "seed \(seed): \(key) streams from \(fetch?.sources ?? []), not from the replica giving it up \(givers)"
                )
            }
        }
        #expect(!fetches.isEmpty)
        // No fetch ever names a replica that keeps the range: it may lack a write the giver has.
        for f in fetches {
            let keeps = Set(after.replicas(for: f.range.end, replicationFactor: 3))
            #expect(
                f.sources.count == 1 && !keeps.contains(f.sources[0]), "seed \(seed): \(f.range) sources \(f.sources)")
        }
    }

    /// When nobody gives a range up (a ring smaller than the factor grows), every old replica
    /// holds all of it and any may be the source.
    @Test func aRingSmallerThanTheFactorStreamsFromAnyOldReplica() throws {
        let before = try ring(nodes: 2, seed: 9)
        var rng = SplitMix64(seed: 99)
        let joining = Fixtures.node(9)
        let tokens = TokenAllocator(tokensPerNode: 16, replicationFactor: 3).allocate(
            for: joining, in: before, using: &rng)
        let fetches = try RangeMovement.bootstrap(ring: before, joining: joining, tokens: tokens, replicationFactor: 3)
        #expect(!fetches.isEmpty)
        for f in fetches { #expect(Set(f.sources) == [Fixtures.node(0), Fixtures.node(1)]) }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func decommissionHandsEveryRangeToItsNewReplicas(seed: UInt64) throws {
        let before = try ring(nodes: 4, seed: seed)
        let leaving = Fixtures.node(2)
        let handoffs = RangeMovement.decommission(ring: before, leaving: leaving, replicationFactor: 3)
        var after = before
        after.remove(leaving)
        var rng = SplitMix64(seed: seed &* 17)
        for _ in 0..<5_000 {
            let key = Token(Int64.random(in: (Int64.min + 1)...Int64.max, using: &rng))
            let old = Set(before.replicas(for: key, replicationFactor: 3))
            for node in after.replicas(for: key, replicationFactor: 3) where !old.contains(node) {
                #expect(old.contains(leaving), "seed \(seed): \(node) gained \(key) that the leaving node did not hold")
                #expect(
                    handoffs.contains { $0.range.contains(key) && $0.targets.contains(node) },
                    "seed \(seed): \(key) never handed to \(node)")
            }
        }
        #expect(!handoffs.isEmpty)
    }

    @Test func aSingleNodeRingHasNothingToStreamFromOnJoinOfTheFirst() throws {
        #expect(
            try RangeMovement.bootstrap(
                ring: TokenRing(), joining: Fixtures.node(1), tokens: [Token(5)], replicationFactor: 3
            ).isEmpty)
    }
}
