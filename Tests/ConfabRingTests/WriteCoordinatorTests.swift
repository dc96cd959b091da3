import ConfabEngine
import Testing

@testable import ConfabRing

@Suite struct WriteCoordinatorTests {
    let r1 = Fixtures.node(1), r2 = Fixtures.node(2), r3 = Fixtures.node(3)
    let m = TestMessages.mutation(chatId: 42, timestamp: 1, messageId: "m1", sender: "ann", body: "hi", writeTime: 10)

    func make(_ cl: ConsistencyLevel, alive: Set<NodeID>) -> WriteCoordinator {
        WriteCoordinator(
            mutation: m, replicas: [r1, r2, r3], consistency: cl, replicationFactor: 3,
            isAlive: { alive.contains($0) }, now: .zero, timeout: .seconds(2))
    }

    @Test func quorumSucceedsOnSecondAckAndHintsTheLateReplica() {
        var w = make(.quorum, alive: [r1, r2, r3])
        #expect(w.start() == [.send(m, to: r1), .send(m, to: r2), .send(m, to: r3)])
        #expect(w.onAck(from: r2).isEmpty)
        #expect(w.onAck(from: r2).isEmpty)  // duplicates do not count
        #expect(w.onAck(from: r1) == [.succeeded])
        #expect(!w.isFinished)
        #expect(w.onTick(now: Fixtures.seconds(1)).isEmpty)
        #expect(w.onTick(now: Fixtures.seconds(2)) == [.storeHint(m, for: r3)])
        #expect(w.isFinished)
    }

    @Test func unavailableIsDecidedBeforeSending() {
        var w = make(.quorum, alive: [r1])
        let actions = w.start()
        #expect(actions.count == 1)
        guard case .failed(let e) = actions[0] else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .unavailable && e.required == 2 && e.received == 1)
        #expect(e.description.contains("QUORUM"))
        #expect(w.isFinished)
    }

    @Test func downReplicaIsHintedAtOnceAndTimeoutIsDistinct() {
        var w = make(.all, alive: [r1, r2, r3])
        _ = w.start()
        _ = w.onAck(from: r1)
        let actions = w.onTick(now: Fixtures.seconds(3))
        guard case .failed(let e) = actions.first else {
            Issue.record("expected timeout")
            return
        }
        #expect(e.code == .writeTimeout && e.received == 1 && e.required == 3)
        #expect(Array(actions.dropFirst()) == [.storeHint(m, for: r2), .storeHint(m, for: r3)])

        var one = make(.one, alive: [r1, r3])
        #expect(one.start() == [.send(m, to: r1), .storeHint(m, for: r2), .send(m, to: r3)])
        #expect(one.onAck(from: r3) == [.succeeded])
        #expect(one.onAck(from: r1).isEmpty && one.isFinished)
    }

    @Test func replicaFailuresFailFastOnceTheLevelIsOutOfReach() {
        var w = make(.quorum, alive: [r1, r2, r3])
        _ = w.start()
        #expect(w.onFailure(from: r1, reason: "disk full").isEmpty)
        let a = w.onFailure(from: r2, reason: "disk full")
        guard case .failed(let e) = a.first else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .writeFailure)
    }

    @Test func pendingReplicasRaiseBlockFor() {
        let r4 = Fixtures.node(4)
        var w = WriteCoordinator(
            mutation: m, replicas: [r1, r2, r3], pending: [r4], consistency: .quorum,
            replicationFactor: 3, isAlive: { _ in true }, now: .zero)
        #expect(w.blockFor == 3)
        #expect(w.start().count == 4)
    }
}
