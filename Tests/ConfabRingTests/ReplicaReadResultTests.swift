import ConfabEngine
import Testing

@testable import ConfabRing

/// `ReplicaReadResult.normalized()`: the canonical form is the same whatever order a replica
/// answered in — ascending, newest-first (strictly descending: reversed, not sorted), or shuffled
/// with repeated keys (sorted and folded).
struct ReplicaReadResultTests {
    @Test func theNormalFormIgnoresTheOrderOfTheAnswer() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for round in 0..<200 {
            let count = Int(rng.next() % 60)
            let keys = Set((0..<count).map { _ in UInt8(rng.next() % 200) })
            var rows: [Mutation.Row] = keys.sorted().map { k in
                Mutation.Row(
                    clustering: [0x01, k],
                    fragment: RowFragment(
                        liveness: LivenessInfo(timestamp: Int64(k)),
                        cells: [Cell(column: 0, timestamp: Int64(k), value: [k])]))
            }
            let ascending = ReplicaReadResult(header: PartitionHeader(), rows: rows).normalized()
            let descending = ReplicaReadResult(header: PartitionHeader(), rows: rows.reversed()).normalized()
            #expect(descending == ascending, "round \(round)")
            #expect(ascending.rows.map(\.clustering) == keys.sorted().map { [0x01, $0] })
            // Shuffled, with a second, newer version of some rows: folded into one row each.
            if let k = keys.first {
                rows.append(
                    Mutation.Row(
                        clustering: [0x01, k],
                        fragment: RowFragment(
                            liveness: LivenessInfo(timestamp: 1000),
                            cells: [Cell(column: 0, timestamp: 1000, value: [9])])
                    ))
            }
            rows.shuffle(using: &rng)
            let shuffled = ReplicaReadResult(header: PartitionHeader(), rows: rows).normalized()
            #expect(shuffled.rows.map(\.clustering) == keys.sorted().map { [0x01, $0] }, "round \(round)")
        }
    }
}
