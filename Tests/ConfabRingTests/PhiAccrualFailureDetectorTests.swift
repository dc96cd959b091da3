import Testing

@testable import ConfabRing

@Suite struct PhiAccrualFailureDetectorTests {
    let peer = Fixtures.node(2)

    @Test func regularPeerStaysUp() {
        var fd = PhiAccrualFailureDetector()
        for s in 0..<300 {
            let now = Fixtures.seconds(Double(s))
            fd.heartbeat(from: peer, now: now)
            #expect(fd.isAvailable(peer, now: now + .milliseconds(999)))
        }
        #expect(fd.sampleCount(of: peer) == 300)
    }

    @Test func silentPeerIsConvictedAtTheExpectedTime() {
        var fd = PhiAccrualFailureDetector()
        for s in 0...1000 { fd.heartbeat(from: peer, now: Fixtures.seconds(Double(s))) }
        // The window holds the 1,000 most recent intervals: all 1 s, the 2 s bootstrap value gone.
        #expect(fd.meanInterval(of: peer) == .seconds(1))
        // phi = Δt / mean × log10(e) > 8  ⇔  Δt > 8 / 0.4343 s ≈ 18.42 s.
        let last = Fixtures.seconds(1000)
        #expect(fd.isAvailable(peer, now: last + .seconds(18.4)))
        #expect(!fd.isAvailable(peer, now: last + .seconds(18.5)))
        #expect(abs(fd.phi(of: peer, now: last + .seconds(10)) - 10 * 0.4342944819032518) < 1e-9)
    }

    @Test func bootstrapIntervalMakesANewPeerSlowToConvict() {
        var fd = PhiAccrualFailureDetector()
        fd.heartbeat(from: peer, now: .zero)
        // One seeded 2 s sample: convicted only after 8 / 0.4343 × 2 ≈ 36.8 s.
        #expect(fd.isAvailable(peer, now: Fixtures.seconds(36)))
        #expect(!fd.isAvailable(peer, now: Fixtures.seconds(37)))
        #expect(fd.isAvailable(Fixtures.node(9), now: Fixtures.seconds(1e6)))  // never heard of
    }

    @Test func jitterIsTolerated() {
        var rng = SplitMix64(seed: 11)
        var fd = PhiAccrualFailureDetector()
        var t = 0.0
        for _ in 0..<500 {
            fd.heartbeat(from: peer, now: Fixtures.seconds(t))
            let gap = 0.5 + Double(rng.next() % 1000) / 1000  // 0.5 ... 1.5 s
            #expect(fd.isAvailable(peer, now: Fixtures.seconds(t + gap)))
            t += gap
        }
        // Gaps above the 2 s maximum interval (a partition) are not learned.
        fd.heartbeat(from: peer, now: Fixtures.seconds(t + 60))
        #expect(fd.meanInterval(of: peer)! < .seconds(1.1))
    }
}
