import Foundation
import Testing

@testable import ConfabEngine

/// Model-based property test: random puts, deletes (cell, row, range, partition), TTLs (on cells
/// and on row markers), reads with
/// paging, flushes, compactions, clock jumps past the grace period and reopenings, checked after
/// every read against a plain in-memory model that shares no code with the engine's merge logic.
/// A failure prints the seed; CONFAB_SEED=<seed> replays it exactly.
@Suite struct EngineModelTests {
    struct ModelCell {
        var ts: Int64
        var value: [UInt8]?
        var expiresAt: Int64
    }
    /// A row marker; `ttl` 0 is permanent.
    struct ModelLiveness {
        var ts: Int64
        var ttl: Int32
        var expiresAt: Int64
    }

    /// The expected state, kept as the newest version of every cell plus every deletion.
    struct Model {
        var cells: [[UInt8]: [[UInt8]: [UInt32: ModelCell]]] = [:]  // pk -> ck -> column
        var liveness: [[UInt8]: [[UInt8]: ModelLiveness]] = [:]
        var rowDeletions: [[UInt8]: [[UInt8]: Int64]] = [:]
        var partitionDeletions: [[UInt8]: Int64] = [:]
        var rangeDeletions: [[UInt8]: [(lo: [UInt8], hi: [UInt8]?, ts: Int64)]] = [:]

        /// On a tie, a version that ends (deleted, or expiring) beats a permanent one; of two that
        /// end, the later end wins, then the deletion. An expired cell is a deletion at its expiry,
        /// whether or not compaction has rewritten it as one yet.
        static func newer(_ a: ModelCell, than b: ModelCell) -> Bool {
            if a.ts != b.ts { return a.ts > b.ts }
            if (a.expiresAt > 0) != (b.expiresAt > 0) { return a.expiresAt > 0 }
            if a.expiresAt != b.expiresAt { return a.expiresAt > b.expiresAt }
            if (a.value == nil) != (b.value == nil) { return a.value == nil }
            guard let va = a.value, let vb = b.value else { return false }
            return !va.lexicographicallyPrecedes(vb) && va != vb
        }

        /// Cassandra's rule, written out independently of `LivenessInfo.supersedes`: the newer
        /// timestamp; on a tie an expiring marker beats a permanent one, then the later expiry, then
        /// the longer TTL.
        static func newer(_ a: ModelLiveness, than b: ModelLiveness) -> Bool {
            if a.ts != b.ts { return a.ts > b.ts }
            if (a.ttl > 0) != (b.ttl > 0) { return a.ttl > 0 }
            if a.expiresAt != b.expiresAt { return a.expiresAt > b.expiresAt }
            return a.ttl > b.ttl
        }

        mutating func putLiveness(_ pk: [UInt8], _ ck: [UInt8], _ l: ModelLiveness) {
            if let old = liveness[pk]?[ck], !Self.newer(l, than: old) { return }
            liveness[pk, default: [:]][ck] = l
        }

        mutating func putCell(_ pk: [UInt8], _ ck: [UInt8], _ col: UInt32, _ c: ModelCell) {
            if let old = cells[pk]?[ck]?[col], !Self.newer(c, than: old) { return }
            cells[pk, default: [:]][ck, default: [:]][col] = c
        }

        func deletionTS(_ pk: [UInt8], _ ck: [UInt8]) -> Int64 {
            var d = max(partitionDeletions[pk] ?? .min, rowDeletions[pk]?[ck] ?? .min)
            for r in rangeDeletions[pk] ?? [] {
                let geLo = compareBytes(ck, r.lo) >= 0
                let ltHi = r.hi.map { compareBytes(ck, $0) < 0 } ?? true
                if geLo && ltHi { d = max(d, r.ts) }
            }
            return d
        }

        func visibleRows(_ pk: [UInt8], now: Int64) -> [([UInt8], [UInt32: [UInt8]])] {
            var keys = Set((cells[pk] ?? [:]).keys)
            keys.formUnion((liveness[pk] ?? [:]).keys)
            var out: [([UInt8], [UInt32: [UInt8]])] = []
            for ck in keys {
                let d = deletionTS(pk, ck)
                var live: [UInt32: [UInt8]] = [:]
                for (col, c) in cells[pk]?[ck] ?? [:] where c.ts > d {
                    if let v = c.value, c.expiresAt == 0 || c.expiresAt > now { live[col] = v }
                }
                let rowLive = (liveness[pk]?[ck]).map { $0.ts > d && ($0.ttl == 0 || $0.expiresAt > now) } ?? false
                if rowLive || !live.isEmpty { out.append((ck, live)) }
            }
            return out.sorted { compareBytes($0.0, $1.0) < 0 }
        }
    }

    static let partitions: [[UInt8]] = (0..<4).map { TestMessages.partitionKey(chatId: Int64($0)) }
    static func ck(_ i: Int) -> [UInt8] { ClusteringKey([.int64(Int64(i))]).bytes }

    func run(seed: UInt64, operations: Int, background: Bool) throws {
        var rng = SplitMix64(seed: seed)
        let dir = TempDirectory("model")
        let clock = ManualClock(micros: 1_000_000 * 1_000)
        var options = EngineOptions()
        options.syncMode = .periodic(milliseconds: 50)
        options.memtableBytes = Int.random(in: 2_000...20_000, using: &rng)
        options.blockBytes = 512
        options.clock = clock
        options.gcGraceSeconds = 30
        options.backgroundWork = background
        options.compaction.minThreshold = 2
        options.compaction.throughputBytesPerSecond = 0
        var engine = try StorageEngine.open(directory: dir.path, options: options)
        var model = Model()
        var log: [String] = []
        defer { try? engine.close() }

        for step in 0..<operations {
            let pk = Self.partitions.randomElement(using: &rng)!
            let now = clock.nowSeconds()
            // Write times near the clock with a coarse jitter, so versions tie and conflict, yet nothing
            // is written older than a tombstone past its grace period (Cassandra's assumption).
            let ts = clock.nowMicros() + Int64.random(in: 0...5, using: &rng) * 500_000
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 40 {
                let c = Self.ck(Int.random(in: 0..<30, using: &rng))
                var cells: [Cell] = []
                for col in UInt32(0)..<3 where Bool.random(using: &rng) {
                    let value = (0..<Int.random(in: 0...3, using: &rng)).map { _ in UInt8.random(in: 0...3, using: &rng)
                    }
                    if Int.random(in: 0..<5, using: &rng) == 0 {
                        let ttl = Int32.random(in: 1...20, using: &rng)
                        cells.append(
                            Cell(column: col, timestamp: ts, value: value, ttl: ttl, expiresAt: now + Int64(ttl)))
                        model.putCell(pk, c, col, ModelCell(ts: ts, value: value, expiresAt: now + Int64(ttl)))
                    } else if Int.random(in: 0..<6, using: &rng) == 0 {
                        cells.append(.tombstone(column: col, timestamp: ts, localDeletionTime: now))
                        model.putCell(pk, c, col, ModelCell(ts: ts, value: nil, expiresAt: now))
                    } else {
                        cells.append(Cell(column: col, timestamp: ts, value: value))
                        model.putCell(pk, c, col, ModelCell(ts: ts, value: value, expiresAt: 0))
                    }
                }
                let withLiveness = Bool.random(using: &rng)
                var liveness: LivenessInfo? = nil
                if withLiveness {
                    // A quarter of the row markers expire (INSERT ... USING TTL).
                    let ttl: Int32 = Int.random(in: 0..<4, using: &rng) == 0 ? Int32.random(in: 1...20, using: &rng) : 0
                    liveness = LivenessInfo(timestamp: ts, ttl: ttl, expiresAt: ttl > 0 ? now + Int64(ttl) : 0)
                    model.putLiveness(pk, c, ModelLiveness(ts: ts, ttl: ttl, expiresAt: ttl > 0 ? now + Int64(ttl) : 0))
                }
                if cells.isEmpty && !withLiveness { continue }
                log.append(
                    "\(step): put \(pk.last!) \(ClusteringKey.describe(c)) ts=\(ts) cells=\(cells.map { "\($0.column):\($0.value.map { "\($0)" } ?? "tomb")/\($0.ttl)" }) liveness=\(liveness.map { "ttl \($0.ttl)" } ?? "-")"
                )
                try engine.write(
                    Mutation(
                        table: 1, partitionKey: pk,
                        rows: [.init(clustering: c, fragment: RowFragment(liveness: liveness, cells: cells))]))
            } else if roll < 46 {
                let c = Self.ck(Int.random(in: 0..<30, using: &rng))
                model.rowDeletions[pk, default: [:]][c] = max(model.rowDeletions[pk]?[c] ?? .min, ts)
                log.append("\(step): delete row \(pk.last!) \(ClusteringKey.describe(c)) ts=\(ts)")
                try engine.write(
                    Mutation(
                        table: 1, partitionKey: pk,
                        rows: [
                            .init(
                                clustering: c,
                                fragment: RowFragment(deletion: DeletionTime(timestamp: ts, localDeletionTime: now)))
                        ]))
            } else if roll < 50 {
                let a = Int.random(in: 0..<30, using: &rng)
                let b = Int.random(in: 0...31, using: &rng)
                let lo = Self.ck(min(a, b))
                let hi: [UInt8]? = max(a, b) >= 31 ? nil : Self.ck(max(a, b) + 1)
                model.rangeDeletions[pk, default: []].append((lo, hi, ts))
                log.append("\(step): delete range \(pk.last!) \(min(a, b))..<\(max(a, b) + 1) ts=\(ts)")
                try engine.write(
                    Mutation(
                        table: 1, partitionKey: pk,
                        header: PartitionHeader(rangeTombstones: [
                            RangeTombstone(
                                start: lo, end: hi, deletion: DeletionTime(timestamp: ts, localDeletionTime: now))
                        ])))
            } else if roll < 52 {
                model.partitionDeletions[pk] = max(model.partitionDeletions[pk] ?? .min, ts)
                log.append("\(step): delete partition \(pk.last!) ts=\(ts)")
                try engine.write(
                    Mutation(
                        table: 1, partitionKey: pk,
                        header: PartitionHeader(deletion: DeletionTime(timestamp: ts, localDeletionTime: now))))
            } else if roll < 82 {
                let reversed = Bool.random(using: &rng)
                let limit = Int.random(in: 1...12, using: &rng)
                let a = Int.random(in: 0..<30, using: &rng)
                let b = Int.random(in: 0..<30, using: &rng)
                let lower =
                    Bool.random(using: &rng)
                    ? ClusteringBound(encoded: Self.ck(min(a, b)), inclusive: Bool.random(using: &rng)) : nil
                let upper =
                    Bool.random(using: &rng)
                    ? ClusteringBound(encoded: Self.ck(max(a, b)), inclusive: Bool.random(using: &rng)) : nil
                var expected = model.visibleRows(pk, now: now).filter { row in
                    if let l = lower {
                        let c = compareBytes(row.0, l.prefix)
                        if c < 0 || (c == 0 && !l.inclusive) { return false }
                    }
                    if let u = upper {
                        let c = compareBytes(row.0, u.prefix)
                        if c > 0 || (c == 0 && !u.inclusive) { return false }
                    }
                    return true
                }
                if reversed { expected.reverse() }
                // Page through with the cursor, in bytes half the time: a page in bytes stops at
                // the first live row that reaches its limit, so the rows before that one hold less.
                let byteLimit = Bool.random(using: &rng) ? Int.random(in: 1...160, using: &rng) : nil
                var got: [([UInt8], [UInt32: [UInt8]])] = []
                var query = SliceQuery(
                    table: 1, partitionKey: pk, lower: lower, upper: upper, reversed: reversed, limit: limit,
                    byteLimit: byteLimit)
                var pages = 0
                var overfull = false
                while true {
                    var sizes: [Int] = []
                    let r = try engine.read(query) { row in
                        var cells: [UInt32: [UInt8]] = [:]
                        row.forEachLiveCell { cells[$0.column] = $0.cell().value! }
                        got.append((Array(row.clustering), cells))
                        sizes.append(SliceQuery.rowBytes(clustering: row.clustering.count, encoded: row.encoded.count))
                    }
                    if r.rowCount > limit || sizes.dropLast().reduce(0, +) >= byteLimit ?? .max { overfull = true }
                    pages += 1
                    guard let c = r.cursor, pages < 100 else { break }
                    query.cursor = c
                }
                let ok =
                    !overfull && got.map(\.0) == expected.map(\.0) && zip(got, expected).allSatisfy { $0.1 == $1.1 }
                if !ok {
                    let tail = log.suffix(40).joined(separator: "\n")
                    Issue.record(
                        """
                        seed \(seed) step \(step): read \(pk.last!) reversed=\(reversed) limit=\(limit) byteLimit=\(byteLimit.map(String.init) ?? "-") overfull=\(overfull) lower=\(lower.map { ClusteringKey.describe($0.prefix) + ($0.inclusive ? "=" : "") } ?? "-") upper=\(upper.map { ClusteringKey.describe($0.prefix) + ($0.inclusive ? "=" : "") } ?? "-")
                        expected \(expected.map { ClusteringKey.describe($0.0) + "\($0.1.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })" })
                        got      \(got.map { ClusteringKey.describe($0.0) + "\($0.1.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })" })
                        replay with CONFAB_SEED=\(seed)
                        last operations:
                        \(tail)
                        """)
                    return
                }
            } else if roll < 87 {
                log.append("\(step): flush")
                try engine.flush()
            } else if roll < 91 {
                log.append("\(step): compact")
                if Bool.random(using: &rng) { try engine.compact() } else { try engine.waitForBackgroundWork() }
            } else if roll < 95 {
                let s = Int64.random(in: 1...40, using: &rng)
                log.append("\(step): clock +\(s)s")
                clock.advance(seconds: s)
            } else {
                log.append("\(step): reopen")
                try engine.close()
                engine = try StorageEngine.open(directory: dir.path, options: options)
            }
        }
    }

    @Test(arguments: 0..<24)
    func randomHistoriesMatchTheModel(round: Int) throws {
        let base = testSeed()
        let seed = base &+ UInt64(round) &* 0x9E37_79B9
        try run(seed: seed, operations: 400, background: round % 4 == 3)
    }
}
