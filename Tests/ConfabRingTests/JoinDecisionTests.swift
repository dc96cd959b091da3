import Testing

@testable import ConfabRing

/// When a JOINING node takes tokens; above all, a node that is not a seed never forms a ring of
/// its own (issue 12: a node started with another cluster secret, refused by its seeds, became a
/// one-node ring after 30 gossip intervals and took writes the real ring never saw).
struct JoinDecisionTests {
    @Test func aNonSeedThatHearsNoSeedWaitsForeverInsteadOfFormingARingAlone() {
        for elapsed in [0, 29] {
            #expect(
                JoinDecision.decide(
                    isSeed: false, otherSeeds: 1, hasLivePeers: false, earlierJoiners: 0, intervalsElapsed: elapsed)
                    == .wait)
        }
        for elapsed in [30, 31, 600, 100_000] {
            #expect(
                JoinDecision.decide(
                    isSeed: false, otherSeeds: 1, hasLivePeers: false, earlierJoiners: 0, intervalsElapsed: elapsed)
                    == .waitForASeed, "a non-seed formed a ring alone after \(elapsed) intervals")
        }
    }

    @Test func aSeedStartsAloneOnlyAfterWaitingForTheOtherSeeds() {
        #expect(
            JoinDecision.decide(
                isSeed: true, otherSeeds: 0, hasLivePeers: false, earlierJoiners: 0, intervalsElapsed: 0)
                == .join)
        #expect(
            JoinDecision.decide(
                isSeed: true, otherSeeds: 2, hasLivePeers: false, earlierJoiners: 0, intervalsElapsed: 29)
                == .wait)
        #expect(
            JoinDecision.decide(
                isSeed: true, otherSeeds: 2, hasLivePeers: false, earlierJoiners: 0, intervalsElapsed: 30)
                == .formAlone)
    }

    @Test func aJoinerWithLivePeersWaitsForGossipToSettleAndForEarlierJoiners() {
        #expect(
            JoinDecision.decide(
                isSeed: false, otherSeeds: 1, hasLivePeers: true, earlierJoiners: 0, intervalsElapsed: 2)
                == .wait)
        #expect(
            JoinDecision.decide(
                isSeed: false, otherSeeds: 1, hasLivePeers: true, earlierJoiners: 0, intervalsElapsed: 3)
                == .join)
        #expect(
            JoinDecision.decide(
                isSeed: false, otherSeeds: 1, hasLivePeers: true, earlierJoiners: 1, intervalsElapsed: 3)
                == .wait)
        #expect(
            JoinDecision.decide(
                isSeed: false, otherSeeds: 1, hasLivePeers: true, earlierJoiners: 1, intervalsElapsed: 30)
                == .join)
    }
}
