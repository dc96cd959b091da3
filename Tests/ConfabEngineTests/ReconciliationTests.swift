import Testing

@testable import ConfabEngine

/// Merging versions must not depend on the order they meet in: replicas (and the memtable, the
/// SSTables and WAL replay) merge the same versions in different orders and must end up with the
/// same bytes. Values come from tiny domains so that equal timestamps, the interesting case, are
/// common.
@Suite struct ReconciliationTests {
    static func liveness(_ rng: inout SplitMix64) -> LivenessInfo {
        let ttl: Int32 = [0, 0, 5, 10][Int.random(in: 0..<4, using: &rng)]
        return LivenessInfo(
            timestamp: Int64.random(in: 1...2, using: &rng), ttl: ttl,
            expiresAt: ttl > 0 ? Int64.random(in: 100...101, using: &rng) : 0)
    }

    static func cell(_ rng: inout SplitMix64, column: UInt32) -> Cell {
        let ts = Int64.random(in: 1...2, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:
            return .tombstone(column: column, timestamp: ts, localDeletionTime: Int64.random(in: 50...51, using: &rng))
        case 1:
            let ttl: Int32 = [5, 10][Int.random(in: 0..<2, using: &rng)]
            return Cell(
                column: column, timestamp: ts, value: [UInt8.random(in: 0...1, using: &rng)], ttl: ttl,
                expiresAt: Int64.random(in: 100...101, using: &rng))
        default:
            return Cell(column: column, timestamp: ts, value: [UInt8.random(in: 0...1, using: &rng)])
        }
    }

    static func fragment(_ rng: inout SplitMix64) -> RowFragment {
        var f = RowFragment()
        if Bool.random(using: &rng) { f.liveness = liveness(&rng) }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            f.deletion = DeletionTime(
                timestamp: Int64.random(in: 0...1, using: &rng),
                localDeletionTime: Int64.random(in: 50...51, using: &rng))
        }
        for column in UInt32(0)..<3 where Bool.random(using: &rng) { f.cells.append(cell(&rng, column: column)) }
        return f
    }

    static func header(_ rng: inout SplitMix64) -> PartitionHeader {
        var h = PartitionHeader()
        if Int.random(in: 0..<3, using: &rng) == 0 {
            h.deletion = DeletionTime(
                timestamp: Int64.random(in: 0...2, using: &rng),
                localDeletionTime: Int64.random(in: 50...51, using: &rng))
        }
        for _ in 0..<Int.random(in: 0...2, using: &rng) {
            let end: [UInt8]? = Bool.random(using: &rng) ? [UInt8.random(in: 5...6, using: &rng)] : nil
            h.rangeTombstones.append(
                RangeTombstone(
                    start: [UInt8.random(in: 1...2, using: &rng)], end: end,
                    deletion: DeletionTime(timestamp: Int64.random(in: 1...3, using: &rng), localDeletionTime: 50)))
        }
        return h
    }

    /// Checks `merge` is commutative and associative on `count` random triples.
    static func checkLaws<T: Equatable>(
        _ name: String, seed: UInt64, count: Int = 5_000,
        _ make: (inout SplitMix64) -> T, _ merge: (T, T) -> T
    ) {
        var rng = SplitMix64(seed: seed)
        for i in 0..<count {
            let a = make(&rng)
            let b = make(&rng)
            let c = make(&rng)
            if merge(a, b) != merge(b, a) {
                Issue.record(
                    "\(name) is not commutative (seed \(seed), case \(i)):\n  a = \(a)\n  b = \(b)\n  a+b = \(merge(a, b))\n  b+a = \(merge(b, a))"
                )
                return
            }
            if merge(merge(a, b), c) != merge(a, merge(b, c)) {
                Issue.record(
                    "\(name) is not associative (seed \(seed), case \(i)):\n  a = \(a)\n  b = \(b)\n  c = \(c)")
                return
            }
        }
    }

    /// Compaction rewrites an expired cell as a tombstone at its expiry; which version wins must
    /// not change when it does, or a value one read returns is gone after the next compaction.
    /// Over random tied pairs and read times, the winner reads the same (absent, or the same value)
    /// with either, both or neither of the pair rewritten once expired.
    @Test func theWinnerReadsTheSameBeforeAndAfterAnExpiredCellBecomesATombstone() {
        var rng = SplitMix64(seed: testSeed())
        func rewritten(_ c: Cell, at now: Int64) -> Cell {
            guard c.isExpiring, !c.isLive(now: now) else { return c }
            return .tombstone(column: c.column, timestamp: c.timestamp, localDeletionTime: c.localExpiry)
        }
        func read(_ c: Cell, at now: Int64) -> [UInt8]? { c.isLive(now: now) ? c.value : nil }
        for _ in 0..<20_000 {
            let a = Self.cell(&rng, column: 0)
            let b = Self.cell(&rng, column: 0)
            let now = Int64.random(in: 99...102, using: &rng)
            let expected = read(Cell.reconcile(a, b), at: now)
            for (x, y) in [
                (rewritten(a, at: now), b), (a, rewritten(b, at: now)), (rewritten(a, at: now), rewritten(b, at: now)),
            ] {
                #expect(read(Cell.reconcile(x, y), at: now) == expected, "\(a) and \(b) at \(now)")
            }
        }
        // The case the model test found: two tied expiring values; the later-expiring one wins and
        // stays after the other is rewritten.
        let long = Cell(column: 0, timestamp: 7, value: [2], ttl: 20, expiresAt: 120)
        let short = Cell(column: 0, timestamp: 7, value: [], ttl: 6, expiresAt: 106)
        #expect(Cell.reconcile(long, short) == long)
        #expect(Cell.reconcile(long, rewritten(short, at: 110)) == long)
    }

    @Test func rowLivenessOnEqualTimestampsFollowsCassandra() {
        let permanent = LivenessInfo(timestamp: 7)
        let expiring = LivenessInfo(timestamp: 7, ttl: 10, expiresAt: 100)
        let later = LivenessInfo(timestamp: 7, ttl: 10, expiresAt: 200)
        let longer = LivenessInfo(timestamp: 7, ttl: 20, expiresAt: 200)
        // On a tie the marker that will disappear decides; then the later expiry; then the longer TTL.
        #expect(LivenessInfo.reconcile(permanent, expiring) == expiring)
        #expect(LivenessInfo.reconcile(expiring, permanent) == expiring)
        #expect(LivenessInfo.reconcile(expiring, later) == later)
        #expect(LivenessInfo.reconcile(longer, later) == longer)
        #expect(LivenessInfo.reconcile(later, longer) == longer)
        // A newer timestamp still wins outright.
        #expect(LivenessInfo.reconcile(expiring, LivenessInfo(timestamp: 8)) == LivenessInfo(timestamp: 8))
        let merged = RowFragment.merge(RowFragment(liveness: permanent), RowFragment(liveness: expiring))
        #expect(merged == RowFragment.merge(RowFragment(liveness: expiring), RowFragment(liveness: permanent)))
        #expect(!merged.isLive(now: 150))
    }

    @Test func mergesAreCommutativeAndAssociative() {
        let seed = testSeed()
        print("ReconciliationTests.mergesAreCommutativeAndAssociative: seed \(seed) (CONFAB_SEED=\(seed))")
        Self.checkLaws("LivenessInfo.reconcile", seed: seed, Self.liveness, LivenessInfo.reconcile)
        Self.checkLaws("Cell.reconcile", seed: seed &+ 1, { Self.cell(&$0, column: 0) }, Cell.reconcile)
        Self.checkLaws("RowFragment.merge", seed: seed &+ 2, Self.fragment, RowFragment.merge)
        Self.checkLaws("PartitionHeader.merge", seed: seed &+ 3, Self.header, PartitionHeader.merge)
        // The stored bytes agree too, not just the values.
        Self.checkLaws(
            "EntryValue.merge bytes", seed: seed &+ 4, { EntryValue.row(Self.fragment(&$0)).encoded() },
            { x, y in EntryValue.merge(try! EntryValue.decode(x), try! EntryValue.decode(y)).encoded() }
        )
    }
}
