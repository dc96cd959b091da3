import ConfabEngine
import Foundation
import Testing

@testable import ConfabRing

/// Merkle-tree repair over real engines: validation, pairwise differences, streaming only what
/// differs, convergence.
@Suite struct RepairTests {
    final class Replica {
        let dir: String
        let engine: StorageEngine
        let node: NodeID

        init(_ name: String) throws {
            dir =
                FileManager.default.temporaryDirectory.appendingPathComponent("repair-\(name)-\(UUID().uuidString)")
                .path
            var o = EngineOptions()
            o.syncMode = .periodic(milliseconds: 50)
            o.memtableBytes = 64 << 10
            engine = try StorageEngine.open(directory: dir, options: o)
            node = NodeID(id: name, host: "127.0.0.1", port: 1)
        }

        deinit {
            try? engine.close()
            try? FileManager.default.removeItem(atPath: dir)
        }

        func history(_ chat: Int64) throws -> [String] {
            try engine.read(TestMessages.latest(chatId: chat, limit: 1000)).rows.compactMap(TestMessages.message(from:))
                .map { "\($0.messageId)=\($0.body)" }
        }
    }

    func message(_ chat: Int64, _ i: Int, body: String? = nil, at time: Int64 = 10) -> Mutation {
        TestMessages.mutation(
            chatId: chat, timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: body ?? "b\(i)", writeTime: time)
    }

    @Test func divergentReplicasConvergeAndOnlyDifferencesMove() throws {
        let a = try Replica("a")
        let b = try Replica("b")
        let c = try Replica("c")
        let chats: [Int64] = Array(0..<300)
        for chat in chats {
            for i in 0..<4 {
                let m = message(chat, i)
                try a.engine.write(m)
                try b.engine.write(m)
                try c.engine.write(m)
            }
        }
        // B missed writes to chats 5 and 77; C holds a newer edit in chat 9; A deleted a row in chat 200.
        try a.engine.write(message(5, 9))
        try c.engine.write(message(5, 9))
        try a.engine.write(message(77, 9))
        try c.engine.write(message(77, 9))
        try c.engine.write(message(9, 1, body: "edited", at: 20))
        try a.engine.write(
            Mutation(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 200),
                rows: [
                    .init(
                        clustering: TestMessages.clustering(timestamp: 2, messageId: "m2"),
                        fragment: RowFragment(deletion: DeletionTime(timestamp: 30, localDeletionTime: 1)))
                ]))
        try b.engine.flush()  // physical layouts differ; logical data is what is compared

        let replicas = [a, b, c]
        // The node's repair driver, over the engines directly.
        let transport = EngineRepairTransport(replicas: replicas.map { ($0.node, $0.engine) })
        let driver = RepairDriver(
            session: RepairSession(
                tasks: [RepairSession.Task(range: .fullRing, replicas: replicas.map(\.node))], depth: 12),
            transport: transport, clock: ManualDriverClock())
        let events = EventLog<RepairDriver<EngineRepairTransport, ManualDriverClock>.Event>()
        driver.start { events.append($0) }
        var outcome: RepairSession.Progress? = nil
        for event in events.all {
            switch event {
            case .progress: break
            case .finished(let p): outcome = p
            case .failed(let e): Issue.record("repair failed: \(e)")
            }
        }
        #expect(driver.isFinished)
        #expect(transport.errors.all.isEmpty, "\(transport.errors.all)")
        let streamedRows = transport.streamedRows.all.reduce(0, +)
        #expect(outcome?.rangesDone == 1)
        #expect(outcome?.rangesOutOfSync == 1)
        #expect(outcome?.rowsStreamed == UInt64(streamedRows), "the session counts the rows its streams reported")
        #expect(outcome?.fraction == 1)
        // Only the few differing leaves moved, not the 1,200 rows.
        #expect(streamedRows > 0 && streamedRows < 200, "streamed \(streamedRows) rows")
        for chat in chats {
            let h = try a.history(chat)
            #expect(try b.history(chat) == h, "chat \(chat)")
            #expect(try c.history(chat) == h, "chat \(chat)")
        }
        #expect(try a.history(9).contains("m1=edited"))
        #expect(try b.history(5).contains("m9=b9"))
        #expect(try !c.history(200).contains("m2=b2"))
        let trees = try replicas.map {
            try MerkleTree.build(from: $0.engine, table: TestMessages.table, range: .fullRing, depth: 12)
        }
        #expect(trees[0].rootHash == trees[1].rootHash && trees[1].rootHash == trees[2].rootHash)
    }

    @Test func treesIgnorePhysicalLayout() throws {
        let a = try Replica("x")
        let b = try Replica("y")
        for i in 0..<500 {
            let m = message(Int64(i % 40), i)
            try a.engine.write(m)
            try b.engine.write(m)
        }
        try b.engine.compact()
        let ta = try MerkleTree.build(from: a.engine, table: TestMessages.table, range: .fullRing)
        let tb = try MerkleTree.build(from: b.engine, table: TestMessages.table, range: .fullRing)
        #expect(ta.rootHash == tb.rootHash)
        #expect(ta.rowCount == 500)
    }

    @Test func aMissingReplicaFailsTheSessionClearly() {
        let nodes = (0..<3).map { NodeID(id: "n\($0)", host: "127.0.0.1", port: $0) }
        var session = RepairSession(tasks: [.init(range: .fullRing, replicas: nodes)], timeout: .seconds(5))
        let start = session.start(now: .zero)
        #expect(start.count == 3)
        let failed = session.onFailure(from: nodes[1], reason: "connection refused", now: .zero)
        guard case .failed(let e)? = failed.first else {
            Issue.record("no failure")
            return
        }
        #expect(e.description.contains("needs every replica"))

        var timed = RepairSession(tasks: [.init(range: .fullRing, replicas: nodes)], timeout: .seconds(5))
        _ = timed.start(now: .zero)
        #expect(timed.onTick(now: RingInstant(nanoseconds: 1_000_000_000)).isEmpty)
        guard case .failed(let t)? = timed.onTick(now: RingInstant(nanoseconds: 6_000_000_000)).first else {
            Issue.record("no timeout")
            return
        }
        #expect(t.description.contains("timed out"))
    }

    /// The driver's one timer is the session's deadline: a replica that never answers fails the
    /// range when the clock passes it, not before, and nothing is asked of anyone afterwards.
    @Test func theRepairDriverTimesOutARangeAtTheSessionsDeadline() {
        let nodes = (0..<3).map { NodeID(id: "n\($0)", host: "127.0.0.1", port: $0) }
        let transport = SilentRepairTransport()
        let clock = ManualDriverClock()
        let driver = RepairDriver(
            session: RepairSession(tasks: [.init(range: .fullRing, replicas: nodes)], timeout: .seconds(5)),
            transport: transport, clock: clock)
        let events = EventLog<RepairDriver<SilentRepairTransport, ManualDriverClock>.Event>()
        driver.start { events.append($0) }
        #expect(transport.asked.all.count == 3)
        clock.advance(to: RingInstant(nanoseconds: 4_900_000_000))
        #expect(events.all.isEmpty && !driver.isFinished)
        clock.advance(to: RingInstant(nanoseconds: 5_000_000_000))
        guard case .failed(let e)? = events.all.first, events.all.count == 1 else {
            Issue.record("expected one failure, got \(events.all)")
            return
        }
        #expect(e.code == .readTimeout && e.description.contains("timed out"))
        #expect(driver.isFinished && clock.pending == 0)
    }

    @Test func rangeStreamingSplitsLargePartitionsAndRespectsRanges() throws {
        let a = try Replica("s")
        for i in 0..<25 { try a.engine.write(message(1, i)) }
        try a.engine.write(
            Mutation(
                table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 1),
                header: PartitionHeader(rangeTombstones: [
                    RangeTombstone(start: [0x10], end: nil, deletion: DeletionTime(timestamp: 1, localDeletionTime: 1))
                ])))
        var batches: [Mutation] = []
        try RangeStreamer.mutations(from: a.engine, table: TestMessages.table, range: .fullRing, maxRows: 10) {
            batches.append($0)
            return true
        }
        #expect(batches.map(\.rows.count) == [10, 10, 5])
        #expect(!batches[0].header.isEmpty)
        let token = Token(partitionKey: TestMessages.partitionKey(chatId: 1))
        var none = 0
        try RangeStreamer.mutations(
            from: a.engine, table: TestMessages.table, range: TokenRange(start: token, end: Token(token.value &+ 1000))
        ) { _ in
            none += 1
            return true
        }
        #expect(none == 0)  // (token, token+1000] excludes the partition's own token
    }
}

/// `RepairTransport` over in-process engines, answering at once (on the caller's stack).
final class EngineRepairTransport: RepairTransport, @unchecked Sendable {
    let replicas: [(node: NodeID, engine: StorageEngine)]
    let streamedRows = EventLog<Int>()
    let errors = EventLog<String>()

    init(replicas: [(NodeID, StorageEngine)]) { self.replicas = replicas.map { (node: $0.0, engine: $0.1) } }

    func engine(_ node: NodeID) -> StorageEngine { replicas.first { $0.node == node }!.engine }

    func merkleTree(
        of range: TokenRange, depth: Int, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<MerkleTree>) -> Void
    ) {
        do {
            done(
                .answered(
                    try MerkleTree.build(from: engine(replica), table: TestMessages.table, range: range, depth: depth)))
        } catch {
            errors.append("\(error)")
            done(.failed("\(error)"))
        }
    }

    func stream(
        _ ranges: [TokenRange], from source: NodeID, to target: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<UInt64>) -> Void
    ) {
        var rows = 0
        do {
            for r in ranges {
                try RangeStreamer.mutations(from: engine(source), table: TestMessages.table, range: r, maxRows: 2) {
                    m in
                    rows += m.rows.count
                    try engine(target).write(m)
                    return true
                }
            }
            streamedRows.append(rows)
            done(.answered(UInt64(rows)))
        } catch {
            errors.append("\(error)")
            done(.failed("\(error)"))
        }
    }
}

/// A `RepairTransport` whose replicas never answer.
final class SilentRepairTransport: RepairTransport, @unchecked Sendable {
    let asked = EventLog<NodeID>()

    func merkleTree(
        of range: TokenRange, depth: Int, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<MerkleTree>) -> Void
    ) { asked.append(replica) }

    func stream(
        _ ranges: [TokenRange], from source: NodeID, to target: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<UInt64>) -> Void
    ) { asked.append(source) }
}
