import ConfabEngine
import Foundation
import Testing

@testable import ConfabRing

/// Paging over divergent replicas: every page a `ReadCoordinator` returns, followed by its cursor
/// to the end, must give exactly the live rows of the merge of the replicas it reads — no row a
/// newer tombstone on another replica deletes, none skipped because one replica's answer ended
/// early — and every page but the last must be full.
@Suite struct ShortReadProtectionTests {
    let r1 = Fixtures.node(1), r2 = Fixtures.node(2), r3 = Fixtures.node(3)
    static let now: Int64 = 1_000
    static let chat: Int64 = 7

    /// A replica with the engine's read semantics (`StorageEngine.readRaw`): rows in query order
    /// after the cursor, dead rows included, stopping after `limit` rows live by its own data and
    /// saying where.
    struct ModelReplica {
        var rows: [[UInt8]: RowFragment] = [:]

        mutating func apply(_ m: Mutation) {
            #expect(m.header.isEmpty)
            for row in m.rows {
                rows[row.clustering] = rows[row.clustering].map { RowFragment.merge($0, row.fragment) } ?? row.fragment
            }
        }

        func read(_ q: SliceQuery) -> ReplicaReadResult {
            var keys = rows.keys.sorted { compareBytes($0, $1) < 0 }
            if q.reversed { keys.reverse() }
            if let c = q.cursor {
                keys = keys.filter { q.reversed ? compareBytes($0, c) < 0 : compareBytes($0, c) > 0 }
            }
            var out = ReplicaReadResult()
            var live = 0
            var bytes = 0
            for k in keys {
                out.rows.append(Mutation.Row(clustering: k, fragment: rows[k]!))
                bytes += ShortReadProtectionTests.bytes(k, rows[k]!)
                guard rows[k]!.isLive(now: ShortReadProtectionTests.now) else { continue }
                live += 1
                if live == q.limit || bytes >= q.byteLimit ?? .max {
                    out.cursor = k
                    break
                }
            }
            return out
        }
    }

    /// The model's measure of a row against a byte limit (the engine's is its stored encoding;
    /// the coordinator only relies on where replicas stopped, not on how they counted).
    static func bytes(_ clustering: [UInt8], _ f: RowFragment) -> Int {
        clustering.count + f.cells.reduce(8) { $0 + 8 + ($1.value?.count ?? 0) }
    }

    func key(_ k: Int) -> [UInt8] { TestMessages.clustering(timestamp: Int64(k), messageId: "m") }

    /// A live row whose body is "v<k>@<ts>" followed by `bodyBytes` bytes of padding.
    func live(_ k: Int, ts: Int64, bodyBytes: Int = 0) -> RowFragment {
        TestMessages.mutation(
            chatId: Self.chat, timestamp: Int64(k), messageId: "m", sender: "s",
            body: "v\(k)@\(ts)" + String(repeating: "x", count: bodyBytes), writeTime: ts
        ).rows[0].fragment
    }

    /// Three replicas holding keys 0..<n (n random in 0...30): per key and replica, absent (`absent` in 10),
    /// live (`live` in 10) or deleted, at a random timestamp; with `sizes`, each key's body is
    /// padded by one of them (drawn before the replicas, as the byte test always did).
    func randomReplicas(
        absent: Int, live liveOdds: Int, sizes: [Int]? = nil, rng: inout SplitMix64
    ) -> [NodeID: ModelReplica] {
        var replicas: [NodeID: ModelReplica] = [r1: ModelReplica(), r2: ModelReplica(), r3: ModelReplica()]
        let keys = Int.random(in: 0...30, using: &rng)
        for k in 0..<keys {
            let size = sizes.map { $0.randomElement(using: &rng)! } ?? 0
            for r in [r1, r2, r3] {
                let ts = Int64.random(in: 1...50, using: &rng)
                let roll = Int.random(in: 0..<10, using: &rng)
                if roll < absent { continue }
                replicas[r]!.rows[key(k)] =
                    roll < absent + liveOdds ? live(k, ts: ts, bodyBytes: size) : deleted(ts: ts)
            }
        }
        return replicas
    }

    /// What a read at `consistency` reads (QUORUM the first two replicas, all being alive), and
    /// the normalized merge of their rows.
    func readSet(
        _ consistency: ConsistencyLevel, _ replicas: [NodeID: ModelReplica]
    ) -> (read: [NodeID], merged: ReplicaReadResult) {
        let read = consistency == .all ? [r1, r2, r3] : [r1, r2]
        let merged = ReplicaReadResult(
            rows: read.flatMap { r in replicas[r]!.rows.map { Mutation.Row(clustering: $0.key, fragment: $0.value) } }
        ).normalized()
        return (read, merged)
    }

    func deleted(ts: Int64) -> RowFragment {
        RowFragment(deletion: DeletionTime(timestamp: ts, localDeletionTime: 900))
    }

    /// Pages `base` to the end through fresh coordinators, delivering actions in a seeded random
    /// order and applying read repairs to the replicas. Returns the pages, or nil after recording
    /// an issue.
    func page(
        _ base: SliceQuery, consistency: ConsistencyLevel, replicas: inout [NodeID: ModelReplica],
        rng: inout SplitMix64, maxPages: Int
    ) -> [ReadResult]? {
        var pages: [ReadResult] = []
        var cursor: [UInt8]? = nil
        repeat {
            var q = base
            q.cursor = cursor
            var rc = ReadCoordinator(
                query: q, replicas: [r1, r2, r3], consistency: consistency, replicationFactor: 3,
                isAlive: { _ in true }, now: .zero, nowSeconds: Self.now)
            var pending = rc.start()
            var answer: ReadResult?
            while !pending.isEmpty {
                let action = pending.remove(at: Int.random(in: 0..<pending.count, using: &rng))
                switch action {
                case .requestData(let q, let from):
                    pending += rc.onData(from: from, replicas[from]!.read(q))
                case .requestDigest(let q, let from):
                    pending += rc.onDigest(from: from, replicas[from]!.read(q).digest())
                case .sendRepair(let m, let to):
                    replicas[to]!.apply(m)
                    pending += rc.onRepairAck(from: to)
                case .succeeded(let r):
                    #expect(answer == nil)
                    answer = r
                case .failed(let e):
                    Issue.record("read failed: \(e)")
                    return nil
                }
            }
            guard let answer, rc.isFinished else {
                Issue.record("no answer for \(q)")
                return nil
            }
            pages.append(answer)
            cursor = answer.cursor
            if pages.count > maxPages {
                Issue.record("more than \(maxPages) pages")
                return nil
            }
        } while cursor != nil
        return pages
    }

    @Test func pagingOverDivergentReplicasWithTombstonesMatchesTheMergedModel() {
        let seed = testSeed("ShortReadProtectionTests")
        var rng = SplitMix64(seed: seed)
        for round in 0..<300 {
            var replicas = randomReplicas(absent: 3, live: 4, rng: &rng)
            let consistency: ConsistencyLevel = Bool.random(using: &rng) ? .all : .quorum
            let (_, merged) = readSet(consistency, replicas)
            let reversed = Bool.random(using: &rng)
            let limit = Int.random(in: 1...4, using: &rng)
            var expected = merged.rows.filter { $0.fragment.isLive(now: Self.now) }
            if reversed { expected.reverse() }
            let base = SliceQuery(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: Self.chat),
                reversed: reversed, limit: limit)
            let context = "seed \(seed) round \(round) \(consistency) limit \(limit) reversed \(reversed)"
            guard
                let pages = page(
                    base, consistency: consistency, replicas: &replicas, rng: &rng,
                    maxPages: expected.count / limit + 2)
            else {
                Issue.record("\(context)")
                return
            }
            let got = pages.flatMap(\.rows)
            var problems: [String] = []
            if got.map(\.clustering) != expected.map(\.clustering) {
                problems.append("rows \(got.map(\.clustering)) expected \(expected.map(\.clustering))")
            }
            let body = { (f: RowFragment) in f.cells.first { $0.column == TestMessages.bodyColumn }?.value }
            if got.map({ $0.value(TestMessages.bodyColumn) }) != expected.map({ body($0.fragment) }) {
                problems.append("values differ")
            }
            // Every page but the last is full, and a full page always carries a cursor.
            for (i, p) in pages.enumerated() {
                if p.rows.count > limit || (i < pages.count - 1 && p.rows.count != limit) {
                    problems.append("page \(i) has \(p.rows.count) rows")
                }
                if p.rows.count == limit, p.cursor != p.rows.last?.clustering {
                    problems.append("full page \(i) without its cursor")
                }
            }
            if !problems.isEmpty {
                Issue.record("\(context): \(problems.joined(separator: "; "))")
                return
            }
        }
    }

    /// Pages in bytes (`SliceQuery.byteLimit`) over divergent replicas with rows of many sizes:
    /// the pages joined are exactly the merged model's live rows (none skipped where a page ended
    /// short of its row limit, none twice), and each page holds no more than what the replicas it
    /// read handed over up to their byte limit: at most `read replicas × (byteLimit + largest
    /// row)`. Before the coordinator ended a page in bytes at the round's boundary, it read on
    /// round after round to fill the row limit, and pages grew past that bound.
    @Test func pagingInBytesOverDivergentReplicasMatchesTheMergedModelAndStaysBounded() {
        let seed = testSeed("ShortReadProtectionTests.bytes")
        var rng = SplitMix64(seed: seed)
        for round in 0..<300 {
            var replicas = randomReplicas(absent: 2, live: 6, sizes: [0, 10, 100, 1_000], rng: &rng)
            let consistency: ConsistencyLevel = Bool.random(using: &rng) ? .all : .quorum
            let (read, merged) = readSet(consistency, replicas)
            let largest = read.flatMap { r in replicas[r]!.rows.map { Self.bytes($0.key, $0.value) } }.max() ?? 0
            let reversed = Bool.random(using: &rng)
            let limit = Int.random(in: 1...40, using: &rng)
            let byteLimit = Int.random(in: 1...3_000, using: &rng)
            var expected = merged.rows.filter { $0.fragment.isLive(now: Self.now) }
            if reversed { expected.reverse() }
            let base = SliceQuery(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: Self.chat),
                reversed: reversed, limit: limit, byteLimit: byteLimit)
            let context =
                "seed \(seed) round \(round) \(consistency) limit \(limit) byteLimit \(byteLimit) reversed \(reversed)"
            guard
                let pages = page(
                    base, consistency: consistency, replicas: &replicas, rng: &rng, maxPages: expected.count + 2)
            else {
                Issue.record("\(context)")
                return
            }
            var problems: [String] = []
            let got = pages.flatMap(\.rows)
            if got.map(\.clustering) != expected.map(\.clustering) {
                problems.append("rows \(got.map(\.clustering)) expected \(expected.map(\.clustering))")
            }
            for (i, p) in pages.enumerated() {
                let bytes = p.rows.reduce(0) { sum, row in
                    sum + Self.bytes(row.clustering, RowFragment(cells: row.cells))
                }
                if p.rows.count > limit || bytes > read.count * (byteLimit + largest) {
                    problems.append("page \(i): \(p.rows.count) rows, \(bytes) bytes")
                }
                if i < pages.count - 1, p.rows.isEmpty { problems.append("page \(i) is empty and not the last") }
                if p.cursor != nil, p.rows.isEmpty { problems.append("page \(i) has a cursor and no rows") }
            }
            if !problems.isEmpty {
                Issue.record("\(context): \(problems.joined(separator: "; "))")
                return
            }
        }
    }

    @Test func aFullPageCarriesACursorEvenWhenReplicasStopAtTheLimit() {
        var replicas: [NodeID: ModelReplica] = [r1: ModelReplica(), r2: ModelReplica(), r3: ModelReplica()]
        for k in 0..<5 { for r in [r1, r2, r3] { replicas[r]!.rows[key(k)] = live(k, ts: 1) } }
        var rc = ReadCoordinator(
            query: SliceQuery(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: Self.chat), limit: 2),
            replicas: [r1, r2, r3], consistency: .quorum, replicationFactor: 3,
            isAlive: { _ in true }, now: .zero, nowSeconds: Self.now)
        let q = rc.query
        _ = rc.start()
        _ = rc.onDigest(from: r2, replicas[r2]!.read(q).digest())
        guard case .succeeded(let r) = rc.onData(from: r1, replicas[r1]!.read(q)).first else {
            Issue.record("no answer")
            return
        }
        #expect(r.rows.map(\.clustering) == [key(0), key(1)])
        #expect(r.cursor == key(1))
    }

    /// r1 holds a, b, c live; r2 deleted a and b later. With limit 2 r1 stops at b, so after the
    /// merge no live row is left up to the boundary: the coordinator must read on after b (from
    /// r1 only — r2 read to the end) and answer c, not an empty "complete" page.
    @Test func tombstonesThatEmptyThePageTriggerAnotherRoundFromTheReplicaThatStopped() {
        var replicas: [NodeID: ModelReplica] = [r1: ModelReplica(), r2: ModelReplica(), r3: ModelReplica()]
        for k in 0..<3 { replicas[r1]!.rows[key(k)] = live(k, ts: 1) }
        for k in 0..<2 { replicas[r2]!.rows[key(k)] = deleted(ts: 2) }
        let q = SliceQuery(
            table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: Self.chat), limit: 2)
        var rc = ReadCoordinator(
            query: q, replicas: [r1, r2, r3], consistency: .quorum, replicationFactor: 3,
            isAlive: { _ in true }, now: .zero, nowSeconds: Self.now)
        _ = rc.start()
        #expect(rc.onDigest(from: r2, replicas[r2]!.read(q).digest()) == [])
        #expect(rc.onData(from: r1, replicas[r1]!.read(q)) == [.requestData(q, from: r2)])
        let repairs = rc.onData(from: r2, replicas[r2]!.read(q))
        #expect(repairs.count == 1)
        guard case .sendRepair(let m, to: r1) = repairs.first else {
            Issue.record("\(repairs)")
            return
        }
        replicas[r1]!.apply(m)
        var next = q
        next.cursor = key(1)
        next.limit = 2
        #expect(rc.onRepairAck(from: r1) == [.requestData(next, from: r1)])
        // c is on r1 only: it is repaired onto r2 before the answer.
        let second = rc.onData(from: r1, replicas[r1]!.read(next))
        #expect(
            second == [
                .sendRepair(
                    Mutation(
                        table: q.table, partitionKey: q.partitionKey,
                        rows: [Mutation.Row(clustering: key(2), fragment: live(2, ts: 1))]), to: r2)
            ])
        guard case .succeeded(let r) = rc.onRepairAck(from: r2).first else {
            Issue.record("no answer")
            return
        }
        #expect(r.rows.map(\.clustering) == [key(2)])
        #expect(r.cursor == nil)
        #expect(rc.extraRounds == 1)
    }

    @Test func aFailedReadRepairFailsTheReadAtOnce() {
        var rc = ReadCoordinator(
            query: TestMessages.latest(chatId: Self.chat, limit: 10), replicas: [r1, r2, r3],
            consistency: .quorum, replicationFactor: 3, isAlive: { _ in true }, now: .zero,
            nowSeconds: Self.now)
        _ = rc.start()
        let fresh = ReplicaReadResult(rows: [Mutation.Row(clustering: key(1), fragment: live(1, ts: 5))])
        _ = rc.onData(from: r1, fresh)
        _ = rc.onDigest(from: r2, ReplicaReadResult().digest())
        #expect(rc.onData(from: r2, ReplicaReadResult()).count == 1)
        guard case .failed(let e) = rc.onRepairFailure(from: r2, reason: "disk full").first else {
            Issue.record("a failed repair did not fail the read")
            return
        }
        #expect(
            e.code == .readFailure && e.message.contains("read repair") && e.message.contains("disk full"),
            "\(e.message)")
        #expect(rc.isFinished)
    }
}
