import ConfabEngine
import Testing

@testable import ConfabRing

@Suite struct HintQueueTests {
    let target = Fixtures.node(2)

    func mutation(_ i: Int) -> Mutation {
        TestMessages.mutation(
            chatId: 1, timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: "b", writeTime: Int64(i))
    }

    @Test func hintsOutsideTheWindowAreNotStored() {
        var q = HintQueue()
        #expect(q.store(mutation(1), for: target, targetDownSince: nil, now: .zero).count == 1)
        let downAt = Fixtures.seconds(100)
        #expect(q.store(mutation(2), for: target, targetDownSince: downAt, now: downAt + .seconds(3 * 3600)).count == 1)
        #expect(
            q.store(mutation(3), for: target, targetDownSince: downAt, now: downAt + .seconds(3 * 3600 + 1)).isEmpty)
        #expect(q.pendingCount(for: target) == 2)
        #expect(q.stats.droppedOutsideWindow == 1)
    }

    @Test func replayWaitsForTheTargetKeepsOrderAndDeletesOnAck() {
        var q = HintQueue()
        var stored: [UInt64] = []
        for i in 0..<3 {
            for case .persist(let h) in q.store(mutation(i), for: target, targetDownSince: .zero, now: .zero) {
                stored.append(h.id)
            }
        }
        #expect(q.onTick(now: Fixtures.seconds(1), isAlive: { _ in false }).isEmpty)
        let replays = q.onTick(now: Fixtures.seconds(2), isAlive: { _ in true })
        let hints = replays.compactMap { if case .replay(let h) = $0 { h } else { nil } }
        #expect(hints.map(\.id) == stored)
        #expect(q.onTick(now: Fixtures.seconds(3), isAlive: { _ in true }).isEmpty)  // in flight
        #expect(q.onReplayAck(id: hints[0].id) == [.delete(id: hints[0].id, target: target)])
        q.onReplayFailed(id: hints[1].id)
        let retry = q.onTick(now: Fixtures.seconds(4), isAlive: { _ in true })
        #expect(retry.count == 1)
        #expect(q.pendingCount(for: target) == 2)
        // Timed-out replays are retried too.
        let again = q.onTick(now: Fixtures.seconds(20), isAlive: { _ in true })
        #expect(again.count == 2)
    }

    @Test func replayIsRateLimited() {
        var cfg = HintQueue.Configuration()
        let size = mutation(0).encoded().count
        cfg.replayBytesPerSecond = size * 10
        cfg.maxInFlightPerTarget = 1000
        var q = HintQueue(configuration: cfg)
        for i in 0..<100 { _ = q.store(mutation(i % 10), for: target, targetDownSince: nil, now: .zero) }
        var sent = 0
        for s in 0..<5 {
            let acts = q.onTick(now: Fixtures.seconds(Double(s)), isAlive: { _ in true })
            sent += acts.count
        }
        // One second of budget at start, then ten hints per second.
        #expect(sent >= 40 && sent <= 52, "sent \(sent)")
    }

    @Test func oldHintsExpireAndRecoveredHintsResume() {
        var q = HintQueue()
        let stored = q.store(mutation(1), for: target, targetDownSince: nil, now: .zero)
        guard case .persist(let hint) = stored.first else {
            Issue.record("no persist")
            return
        }
        var recovered = HintQueue(recovered: [hint.ref])
        #expect(recovered.pendingCount(for: target) == 1)
        let expired = recovered.onTick(now: Fixtures.seconds(11 * 24 * 3600), isAlive: { _ in false })
        #expect(expired == [.delete(id: hint.id, target: target)])
        #expect(recovered.totalPending == 0)
        #expect(
            q.store(mutation(2), for: target, targetDownSince: nil, now: .zero).first.map {
                if case .persist(let h) = $0 { h.id > hint.id } else { false }
            } == true)
    }
}

extension HintQueueTests {
    /// A node that left takes no hints: they are deleted at once (in flight ones too, whose late
    /// acknowledgement then changes nothing), not kept until they expire days later.
    @Test func hintsForANodeThatLeftAreDroppedAndDeleted() {
        var q = HintQueue()
        let other = Fixtures.node(3)
        for i in 0..<3 { _ = q.store(mutation(i), for: target, targetDownSince: .zero, now: .zero) }
        _ = q.store(mutation(9), for: other, targetDownSince: .zero, now: .zero)
        let replays = q.onTick(now: Fixtures.seconds(1), isAlive: { $0 == target })
        let flying = replays.compactMap { if case .replay(let h) = $0 { h.id } else { nil } }
        #expect(flying.count == 3)
        let dropped = q.dropHints(for: target)
        #expect(dropped == flying.map { .delete(id: $0, target: target) })
        #expect(q.pendingCount(for: target) == 0 && q.pendingCount(for: other) == 1)
        #expect(q.stats.droppedForLeftNode == 3)
        #expect(q.onReplayAck(id: flying[0]).isEmpty)
        #expect(q.dropHints(for: target).isEmpty)
    }
}

extension HintQueueTests {
    /// The queue runs inside the ring actor every 100 ms: a tick must not walk every hint held
    /// (it did — expiry and the in-flight count scanned each target's whole queue), and a failed
    /// replay must go back to its place so a target still gets its hints in creation order.
    @Test func aTickLooksAtTheReplaysItPlansNotAtEveryHint() {
        var q = HintQueue()
        let other = Fixtures.node(3)
        for i in 0..<20_000 {
            _ = q.store(mutation(i % 50), for: i % 2 == 0 ? target : other, targetDownSince: nil, now: .zero)
        }
        #expect(q.totalPending == 20_000)
        #expect(q.onTick(now: Fixtures.seconds(1), isAlive: { _ in false }).isEmpty)
        #expect(q.stats.examinedLastTick == 0)
        let replays = q.onTick(now: Fixtures.seconds(2), isAlive: { $0 == target }).compactMap {
            if case .replay(let h) = $0 { h } else { nil }
        }
        #expect(replays.count == 8 && q.stats.examinedLastTick == 8)
        #expect(replays.map(\.id) == replays.map(\.id).sorted() && replays.allSatisfy { $0.target == target })
        // Fail the third, acknowledge the rest: the third is replayed next, before younger ones.
        q.onReplayFailed(id: replays[2].id)
        for h in replays where h.id != replays[2].id { #expect(q.onReplayAck(id: h.id).count == 1) }
        #expect(q.totalPending == 20_000 - 7)
        let next = q.onTick(now: Fixtures.seconds(3), isAlive: { $0 == target }).compactMap {
            if case .replay(let h) = $0 { h.id } else { nil }
        }
        #expect(next.first == replays[2].id && next.count == 8 && q.stats.examinedLastTick == 8)
        // Expiry looks at the oldest hints only, and removes all of them once they are old (the
        // replays in flight timed out and went back first).
        let expired = q.onTick(now: Fixtures.seconds(11 * 24 * 3600), isAlive: { _ in false })
        #expect(expired.count == 20_000 - 7 && q.totalPending == 0 && q.targets.isEmpty)
    }
}
