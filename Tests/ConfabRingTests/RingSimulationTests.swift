import Foundation
import Testing

@testable import ConfabRing

/// Seeded whole-ring simulations (see `RingSimulation`). A failure prints its seed; replay it with
/// `CONFAB_SEED=<seed> swift test --filter RingSimulationTests`.
@Suite struct RingSimulationTests {
    static let seeds: [UInt64] = {
        if let s = ProcessInfo.processInfo.environment["CONFAB_SEED"], let seed = UInt64(s) { return [seed] }
        // The soak (tools/soak.sh) runs more: CONFAB_SIM_SEEDS=20000.
        let count = ProcessInfo.processInfo.environment["CONFAB_SIM_SEEDS"].flatMap { UInt64($0) } ?? 2_000
        return Array(1...max(1, count))
    }()

    @Test(arguments: seeds)
    func noAcknowledgedWriteLostNoDeleteResurrectedGossipConverges(seed: UInt64) {
        var sim = RingSimulation(seed: seed)
        sim.run()
        #expect(
            sim.failures.isEmpty,
            "seed \(seed) (\(sim.params)): \(sim.failures.prefix(5)); replay with CONFAB_SEED=\(seed)")
        #expect(sim.stats.acked > 0, "seed \(seed): no write was acknowledged; replay with CONFAB_SEED=\(seed)")
    }

    @Test func aSeedReplaysExactly() {
        var a = RingSimulation(seed: 4242)
        var b = RingSimulation(seed: 4242)
        a.run()
        b.run()
        #expect(a.now == b.now && "\(a.stats)" == "\(b.stats)" && a.writes.count == b.writes.count)
        #expect(a.finalResults == b.finalResults)
    }
}
