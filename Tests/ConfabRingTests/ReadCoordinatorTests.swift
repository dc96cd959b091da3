import ConfabEngine
import Testing

@testable import ConfabRing

@Suite struct ReadCoordinatorTests {
    let r1 = Fixtures.node(1), r2 = Fixtures.node(2), r3 = Fixtures.node(3)
    let query = TestMessages.latest(chatId: 42, limit: 10)

    func row(_ id: String, ts: Int64, body: String) -> Mutation.Row {
        TestMessages.mutation(chatId: 42, timestamp: 100, messageId: id, sender: "ann", body: body, writeTime: ts).rows[
            0]
    }

    func make(_ cl: ConsistencyLevel = .quorum, alive: Set<NodeID>? = nil) -> ReadCoordinator {
        let live = alive ?? [r1, r2, r3]
        return ReadCoordinator(
            query: query, replicas: [r1, r2, r3], consistency: cl, replicationFactor: 3,
            isAlive: { live.contains($0) }, now: .zero, nowSeconds: 1_000)
    }

    /// A replica gaining the range (a join or leave in progress in this coordinator's view) is
    /// read too and needs one more answer: a write acknowledged by a coordinator that already sees
    /// the move finished reached only the new replicas (simulation seed 1430).
    @Test func aPendingReplicaIsReadAndAddsOneToBlockFor() {
        let joiner = Fixtures.node(4)
        var rc = ReadCoordinator(
            query: query, replicas: [r1, r2, r3], pending: [joiner], consistency: .quorum, replicationFactor: 3,
            isAlive: { _ in true }, now: .zero, nowSeconds: 1_000)
        #expect(rc.blockFor == 3)
        #expect(
            rc.start() == [
                .requestData(query, from: r1), .requestDigest(query, from: r2), .requestDigest(query, from: r3),
            ])
        // With the joiner among too few live nodes, the level cannot be met.
        var down = ReadCoordinator(
            query: query, replicas: [r1, r2, r3], pending: [joiner], consistency: .quorum, replicationFactor: 3,
            isAlive: { $0 == r1 || $0 == joiner }, now: .zero, nowSeconds: 1_000)
        guard case .failed(let e) = down.start().first else {
            Issue.record("expected unavailable")
            return
        }
        #expect(e.code == .unavailable)
    }

    @Test func matchingDigestsAnswerWithoutRepair() {
        var rc = make()
        #expect(rc.start() == [.requestData(query, from: r1), .requestDigest(query, from: r2)])
        let data = ReplicaReadResult(rows: [row("a", ts: 1, body: "x"), row("b", ts: 2, body: "y")])
        #expect(rc.onDigest(from: r2, data.digest()).isEmpty)
        let out = rc.onData(from: r1, data)
        guard case .succeeded(let result) = out.first else {
            Issue.record("\(out)")
            return
        }
        #expect(
            result.rows.map(\.clustering) == [
                TestMessages.clustering(timestamp: 100, messageId: "b"),
                TestMessages.clustering(timestamp: 100, messageId: "a"),
            ])  // newest first
        #expect(rc.isFinished)
    }

    @Test func mismatchFetchesDataRepairsStaleReplicaAndWaitsForTheAck() {
        var rc = make()
        _ = rc.start()
        let fresh = ReplicaReadResult(rows: [row("a", ts: 1, body: "x"), row("b", ts: 2, body: "y")])
        let stale = ReplicaReadResult(rows: [row("a", ts: 1, body: "x")])
        _ = rc.onData(from: r1, fresh)
        #expect(rc.onDigest(from: r2, stale.digest()) == [.requestData(query, from: r2)])
        let repair = rc.onData(from: r2, stale)
        #expect(
            repair == [
                .sendRepair(
                    Mutation(
                        table: query.table, partitionKey: query.partitionKey,
                        rows: [row("b", ts: 2, body: "y")]), to: r2)
            ])
        #expect(rc.onRepairAck(from: r1).isEmpty)
        let out = rc.onRepairAck(from: r2)
        guard case .succeeded(let result) = out.first else {
            Issue.record("\(out)")
            return
        }
        #expect(result.rows.count == 2)
        #expect(rc.repairedReplicas == [r2])
    }

    @Test func newestTimestampWinsAndTombstonesShadowOlderData() {
        var rc = make()
        _ = rc.start()
        var deleted = row("a", ts: 1, body: "x")
        deleted.fragment = RowFragment(deletion: DeletionTime(timestamp: 5, localDeletionTime: 900))
        let old = ReplicaReadResult(rows: [row("a", ts: 1, body: "x"), row("b", ts: 2, body: "old")])
        let new = ReplicaReadResult(rows: [deleted, row("b", ts: 3, body: "new")])
        _ = rc.onData(from: r1, old)
        _ = rc.onDigest(from: r2, new.digest())
        let repairs = rc.onData(from: r2, new)
        // r1 needs the tombstone and the newer b; r2 is up to date.
        #expect(repairs.count == 1)
        guard case .sendRepair(let m, let to) = repairs.first else {
            Issue.record("\(repairs)")
            return
        }
        #expect(to == r1 && m.rows.count == 2)
        guard case .succeeded(let result) = rc.onRepairAck(from: r1).first else {
            Issue.record("no answer")
            return
        }
        #expect(result.rows.map { String(decoding: $0.value(TestMessages.bodyColumn)!, as: UTF8.self) } == ["new"])
        #expect(result.tombstonesScanned == 1)
    }

    @Test func unavailableAndTimeoutsAreDistinct() {
        var down = make(alive: [r3])
        guard case .failed(let e) = down.start().first else {
            Issue.record("expected unavailable")
            return
        }
        #expect(e.code == .unavailable)

        var slow = make()
        _ = slow.start()
        _ = slow.onData(from: r1, ReplicaReadResult())
        #expect(slow.onTick(now: Fixtures.seconds(4)).isEmpty)
        guard case .failed(let t) = slow.onTick(now: Fixtures.seconds(5)).first else {
            Issue.record("expected timeout")
            return
        }
        #expect(t.code == .readTimeout && t.received == 1 && t.message.contains("digests"))
    }

    @Test func digestCoversTimestampsAndIsOrderIndependent() {
        let x = ReplicaReadResult(rows: [row("a", ts: 1, body: "x"), row("b", ts: 2, body: "y")])
        let y = ReplicaReadResult(rows: [row("b", ts: 2, body: "y"), row("a", ts: 1, body: "x")])
        #expect(x.digest() == y.digest())
        var z = x
        z.rows[0].fragment.cells[0].timestamp = 7
        #expect(x.digest() != z.digest())
    }
}

extension ReadCoordinatorTests {
    /// A replica that reports an error (a corrupt block, say) is that replica failing, not the
    /// read: the third replica takes its place, in the role the failed one had.
    @Test func aFailingReplicaIsReplacedByTheSpareReplica() {
        let data = ReplicaReadResult(rows: [row("a", ts: 1, body: "x")])
        // The data replica fails: the spare is asked for full data.
        var rc = make()
        _ = rc.start()
        #expect(rc.onDigest(from: r2, data.digest()).isEmpty)
        #expect(rc.onFailure(from: r1, reason: "corruption in sst-1.db") == [.requestData(query, from: r3)])
        guard case .succeeded(let result) = rc.onData(from: r3, data).first else {
            Issue.record("no answer")
            return
        }
        #expect(result.rows.count == 1)
        #expect(rc.failedReplicas == [r1])

        // A digest replica fails: the spare is asked for a digest.
        var rc2 = make()
        _ = rc2.start()
        #expect(rc2.onFailure(from: r2, reason: "corruption") == [.requestDigest(query, from: r3)])
        #expect(rc2.onData(from: r1, data).isEmpty)
        guard case .succeeded = rc2.onDigest(from: r3, data.digest()).first else {
            Issue.record("no answer")
            return
        }

        // No spare left: the read fails, naming the replica.
        var rc3 = make()
        _ = rc3.start()
        _ = rc3.onFailure(from: r2, reason: "corruption")
        guard case .failed(let e) = rc3.onFailure(from: r3, reason: "also corrupt").first else {
            Issue.record("expected a failure")
            return
        }
        #expect(e.code == .readFailure && e.message.contains("also corrupt"), "\(e.message)")
    }
}
