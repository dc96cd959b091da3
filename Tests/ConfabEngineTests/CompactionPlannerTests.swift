import Testing

@testable import ConfabEngine

@Suite struct CompactionPlannerTests {
    func table(_ n: UInt64, _ size: Int, day: Int64) -> CompactionPlanner.Table {
        .init(fileNumber: n, size: size, maxTimestamp: (day * 86_400 + 100) * 1_000_000)
    }

    @Test func sizeTiersTheNewestWindow() {
        let p = CompactionPlanner(options: CompactionOptions())
        #expect(p.pick([table(1, 100, day: 5), table(2, 110, day: 5), table(3, 90, day: 5)]) == nil)
        let pick = p.pick([
            table(1, 100, day: 5), table(2, 110, day: 5), table(3, 90, day: 5), table(4, 105, day: 5),
            table(5, 10_000, day: 5),
        ])
        #expect(Set(pick ?? []) == [1, 2, 3, 4])
    }

    @Test func closedWindowsBecomeOneTable() {
        let p = CompactionPlanner(options: CompactionOptions())
        let pick = p.pick([table(1, 100, day: 1), table(2, 5_000, day: 1), table(3, 90, day: 5)])
        #expect(Set(pick ?? []) == [1, 2])
        #expect(p.pick([table(1, 100, day: 1), table(3, 90, day: 5)]) == nil)
    }
}
