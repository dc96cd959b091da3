import ConfabEngine
import ConfabRing
import ConfabWire
import Logging

/// Coordinates `confab repair` on the node that received it: per table, a `RepairSession` (pure
/// state machine) over every vnode range this node replicates in the table's keyspace, driven
/// here — Merkle tree requests to each replica (this node builds its own on the thread pool),
/// StreamRangesRequests to the source of each differing pair — and summarised as a
/// `RepairReport`, with `RepairProgress` after each range when the caller asked for it.
///
/// Ranges and replicas come from `ReplicaPlacement` at the keyspace's replication factor (per
/// vnode, never coalesced: neighbouring ranges have different replica sets), so a keyspace at RF
/// 1 has nothing to compare and one at RF 3 compares three trees per range. Repair needs every
/// replica of a range: a replica known to be down fails the request before any work, with
/// `unavailable`; one that fails during the session fails it with the session's message.
struct RepairCoordinator: Sendable {
    let ring: RingService
    let replica: LocalReplica
    let messenger: InternodeMessenger
    let schema: SchemaRegistry
    let logger: Logger
    var treeTimeout: Duration = .seconds(120)
    var streamTimeout: Duration = .seconds(600)
    /// Per range, covering its validation and streams (the session's own deadline).
    var rangeTimeout: Duration = .seconds(900)

    static let defaultDepth = 10

    private enum Event: Sendable {
        case tree(NodeID, MerkleTree)
        case streamDone(from: NodeID, to: NodeID, rows: UInt64)
        case failure(NodeID, String)
        case tick
    }

    /// One table's share of the session: its ranges with their replicas in its keyspace.
    private struct TablePlan: Sendable {
        var table: TableSchema
        var tasks: [RepairSession.Task]
    }

    /// Where the session is, for `RepairProgress`: the counts of the tables already finished.
    private struct Position: Sendable {
        var tableIndex: Int
        var tableCount: Int
        var rangesBefore: Int
        var rangesTotal: Int
        var started: ContinuousClock.Instant
    }

    func run(depth requested: Int, progress: (@Sendable (RepairProgress) async -> Void)? = nil) async throws
        -> RepairReport
    {
        let depth = requested == 0 ? Self.defaultDepth : requested
        guard (1...MerkleTreeLeaves.maxDepth).contains(depth) else {
            throw WireError(.invalid, "repair depth \(depth) outside 1...\(MerkleTreeLeaves.maxDepth)")
        }
        let started = ContinuousClock.now
        let snapshot = try await ring.snapshot()
        let local = snapshot.local
        let placement = snapshot.placement(schema)
        let plans = schema.tables.map { table in
            TablePlan(
                table: table,
                tasks: placement.rangesWithReplicas(keyspace: table.keyspace)
                    .filter { $0.replicas.contains(local) && $0.replicas.count >= 2 }
                    .map { RepairSession.Task(range: $0.range, replicas: $0.replicas) })
        }
        let down = Set(plans.flatMap { $0.tasks.flatMap(\.replicas) }).filter { !snapshot.isAlive($0) }.sorted()
        guard down.isEmpty else {
            throw WireError(
                .unavailable,
                """
                repair needs every replica of the ranges this node replicates, and \
                \(down.map { "\($0.address) (\($0.id))" }.joined(separator: ", ")) \(down.count == 1 ? "is" : "are") down; \
                bring \(down.count == 1 ? "it" : "them") back (e.g. `confab ring restart N`) and run repair again
                """)
        }
        let total = plans.reduce(0) { $0 + $1.tasks.count }
        logger.info(
            "repair started", metadata: ["ranges": "\(total)", "tables": "\(plans.count)", "depth": "\(depth)"])
        var outcomes: [RepairReport.RangeOutcome] = []
        var before = 0
        for (i, plan) in plans.enumerated() {
            let position = Position(
                tableIndex: i + 1, tableCount: plans.count, rangesBefore: before, rangesTotal: total,
                started: started)
            outcomes += try await session(plan, depth: depth, local: local, position: position, progress: progress)
            before += plan.tasks.count
        }
        let report = RepairReport(
            coordinator: local.id, ranges: outcomes, elapsedMicros: (ContinuousClock.now - started).micros)
        logger.info(
            "repair finished",
            metadata: [
                "ranges": "\(outcomes.count)", "out_of_sync": "\(report.rangesOutOfSync)",
                "subranges_streamed": "\(report.subrangesStreamed)", "rows_streamed": "\(report.rowsStreamed)",
            ])
        return report
    }

    /// Runs one session for a table: carries out its actions, feeds the answers back, and turns
    /// its progress into per-range outcomes (and progress reports).
    private func session(
        _ plan: TablePlan, depth: Int, local: NodeID, position: Position,
        progress report: (@Sendable (RepairProgress) async -> Void)?
    ) async throws -> [RepairReport.RangeOutcome] {
        let (table, tasks) = (plan.table, plan.tasks)
        var session = RepairSession(tasks: tasks, depth: depth, timeout: rangeTimeout)
        func progress(_ p: RepairSession.Progress) -> RepairProgress {
            RepairProgress(
                keyspace: table.keyspace, table: table.name, tableIndex: position.tableIndex,
                tableCount: position.tableCount, rangesDone: p.rangesDone, rangesTotal: tasks.count,
                rangesDiffering: p.rangesOutOfSync, subrangesStreamed: p.subrangesStreamed,
                rowsStreamed: p.rowsStreamed, overallRangesDone: position.rangesBefore + p.rangesDone,
                overallRangesTotal: position.rangesTotal, elapsedMicros: (ContinuousClock.now - position.started).micros
            )
        }
        await report?(progress(RepairSession.Progress()))
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    sink.yield(.tick)
                }
            }
            var outcomes: [RepairReport.RangeOutcome] = []
            var streamedBefore = 0
            var rowsBefore: UInt64 = 0
            var rangeStarted = ContinuousClock.now
            var actions = session.start(now: ring.now())
            var iterator = events.makeAsyncIterator()
            while true {
                for action in actions {
                    switch action {
                    case .requestTree(let from, let range, let depth):
                        group.addTask {
                            sink.yield(
                                await self.tree(from: from, table: table, range: range, depth: depth, local: local))
                        }
                    case .stream(let from, let to, let ranges):
                        group.addTask {
                            sink.yield(
                                await self.stream(from: from, to: to, table: table, ranges: ranges, local: local))
                        }
                    case .progress(let p):
                        let task = tasks[p.rangesDone - 1]
                        let streamed = p.subrangesStreamed - streamedBefore
                        let rows = p.rowsStreamed - rowsBefore
                        (streamedBefore, rowsBefore) = (p.subrangesStreamed, p.rowsStreamed)
                        outcomes.append(
                            RepairReport.RangeOutcome(
                                keyspace: table.keyspace, table: table.name, start: task.range.start.value,
                                end: task.range.end.value, replicas: task.replicas.count, subrangesStreamed: streamed,
                                rowsStreamed: rows, elapsedMicros: (ContinuousClock.now - rangeStarted).micros))
                        rangeStarted = ContinuousClock.now
                        logger.debug(
                            "repair range done",
                            metadata: [
                                "table": "\(table.qualifiedName)", "range": "\(p.rangesDone)/\(p.rangesTotal)",
                                "subranges_streamed": "\(streamed)", "rows_streamed": "\(rows)",
                            ])
                        await report?(progress(p))
                    case .finished:
                        return outcomes
                    case .failed(let error):
                        logger.warning(
                            "repair failed", metadata: ["table": "\(table.qualifiedName)", "error": "\(error.message)"])
                        throw WireError(
                            error.code == .unavailable ? .unavailable : error.code == .readTimeout ? .timeout : .server,
                            error.message)
                    }
                }
                guard let event = await iterator.next() else {
                    throw WireError(.server, "repair session ended without finishing")
                }
                let now = ring.now()
                switch event {
                case .tree(let node, let tree): actions = session.onTree(tree, from: node, now: now)
                case .streamDone(let from, let to, let rows):
                    actions = session.onStreamDone(from: from, to: to, rows: rows, now: now)
                case .failure(let node, let reason): actions = session.onFailure(from: node, reason: reason, now: now)
                case .tick: actions = session.onTick(now: now)
                }
            }
        }
    }

    /// A replica's tree of `range`.
    private func tree(from node: NodeID, table: TableSchema, range: TokenRange, depth: Int, local: NodeID) async
        -> Event
    {
        do {
            let leaves: MerkleTreeLeaves
            if node == local {
                leaves = MerkleTreeLeaves(try await replica.merkleTree(table: table.id, range: range, depth: depth))
            } else {
                let request = MerkleTreeRequest(keyspace: table.keyspace, table: table.name, range: range, depth: depth)
                let reply = try await messenger.request(
                    .merkleTreeRequest(request), to: node.address, timeout: treeTimeout)
                guard case .merkleTreeResponse(let l) = reply else {
                    throw WireError(.protocolError, "answered MerkleTreeRequest with \(reply.type)")
                }
                leaves = l
            }
            guard leaves.range == range, leaves.depth == depth, leaves.leaves.count == 1 << depth else {
                return .failure(
                    node,
                    "sent a tree of \(leaves.range) at depth \(leaves.depth), asked for \(range) at depth \(depth)")
            }
            guard let tree = leaves.tree() else {
                return .failure(node, "sent \(leaves.leaves.count) leaves for a tree of depth \(depth)")
            }
            return .tree(node, tree)
        } catch {
            if error is InternodeMessenger.InternodeFailure { await ring.markUnreachable(node) }
            return .failure(node, "Merkle tree request failed: \(error)")
        }
    }

    /// Has `from` send its data in `ranges` to `to` (this node streams directly when it is the source).
    private func stream(from: NodeID, to: NodeID, table: TableSchema, ranges: [TokenRange], local: NodeID) async
        -> Event
    {
        do {
            let done: StreamRangesDone
            if from == local {
                done = try await RangeStreamSource(replica: replica, messenger: messenger).send(
                    table: table, ranges: ranges, to: to.address)
            } else {
                let request = StreamRangesRequest(
                    keyspace: table.keyspace, table: table.name, target: to.address, ranges: ranges)
                let reply = try await messenger.request(
                    .streamRanges(request), to: from.address, timeout: streamTimeout)
                guard case .streamRangesDone(let d) = reply else {
                    throw WireError(.protocolError, "answered StreamRangesRequest with \(reply.type)")
                }
                done = d
            }
            return .streamDone(from: from, to: to, rows: done.rows)
        } catch {
            return .failure(from, "streaming \(ranges.count) sub-range(s) to \(to.address) failed: \(error)")
        }
    }
}
