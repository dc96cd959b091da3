import ConfabEngine
import ConfabRing
import ConfabWire
import Logging
import NIOPosix

/// Runs `confab repair` on the node that received it: per table, a `RepairSession` (pure state
/// machine) over every vnode range this node replicates in the table's keyspace, under a
/// `RepairDriver` over `NodeRepairTransport` — Merkle tree requests to each replica (this node builds its own on the thread pool),
/// StreamRangesRequests to the source of each differing pair — and summarised as a
/// `RepairReport`, with `RepairProgress` after each range when the caller asked for it.
///
/// Ranges and replicas come from `ReplicaPlacement` at the keyspace's replication factor (per
/// vnode, never coalesced: neighbouring ranges have different replica sets), so a keyspace at RF
/// 1 has nothing to compare and one at RF 3 compares three trees per range. Repair needs every
/// replica of a range: a replica known to be down fails the request before any work, with
/// `unavailable`; one that fails during the session fails it with the session's message.
struct RepairRunner: Sendable {
    let ring: ClusterService
    let replica: LocalReplica
    let messenger: InternodeMessenger
    let schema: SchemaRegistry
    let logger: Logger
    var treeTimeout: Duration = .seconds(120)
    var streamTimeout: Duration = .seconds(600)
    /// Per range, covering its validation and streams (the session's own deadline).
    var rangeTimeout: Duration = .seconds(900)

    static let defaultDepth = 10

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
        let snapshot = try ring.snapshot()
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

    /// Runs one table's session under a `RepairDriver` and turns its progress into per-range
    /// outcomes (and progress reports, in the session's order).
    private func session(
        _ plan: TablePlan, depth: Int, local: NodeID, position: Position,
        progress report: (@Sendable (RepairProgress) async -> Void)?
    ) async throws -> [RepairReport.RangeOutcome] {
        let (table, tasks) = (plan.table, plan.tasks)
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
        typealias Driver = RepairDriver<NodeRepairTransport, NodeDriverClock>
        let driver = Driver(
            session: RepairSession(tasks: tasks, depth: depth, timeout: rangeTimeout),
            transport: NodeRepairTransport(runner: self, table: table, local: local),
            clock: NodeDriverClock(
                ring: ring,
                deadlines: RequestDeadlines(
                    loop: MultiThreadedEventLoopGroup.singleton.next(), now: { [ring] in ring.now() })))
        // The driver calls back from whichever thread answered; the stream hands its events, in
        // order, to this task, which awaits the client's progress writes.
        let (events, sink) = AsyncStream.makeStream(of: Driver.Event.self)
        driver.start { event in
            sink.yield(event)
            if case .progress = event { return }
            sink.finish()
        }
        var outcomes: [RepairReport.RangeOutcome] = []
        var streamedBefore = 0
        var rowsBefore: UInt64 = 0
        var rangeStarted = ContinuousClock.now
        for await event in events {
            switch event {
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
        throw WireError(.server, "repair session ended without finishing")
    }

    /// A replica's tree of `range`.
    fileprivate func tree(from node: NodeID, table: TableSchema, range: TokenRange, depth: Int, local: NodeID) async
        -> ReplicaOutcome<MerkleTree>
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
                return .failed(
                    "sent a tree of \(leaves.range) at depth \(leaves.depth), asked for \(range) at depth \(depth)")
            }
            guard let tree = leaves.tree() else {
                return .failed("sent \(leaves.leaves.count) leaves for a tree of depth \(depth)")
            }
            return .answered(tree)
        } catch {
            if error is InternodeMessenger.InternodeFailure {
                await ring.markUnreachable(node)
                return .unreachable("Merkle tree request failed: \(error)")
            }
            return .failed("Merkle tree request failed: \(error)")
        }
    }

    /// Has `from` send its data in `ranges` to `to` (this node streams directly when it is the source).
    fileprivate func stream(from: NodeID, to: NodeID, table: TableSchema, ranges: [TokenRange], local: NodeID) async
        -> ReplicaOutcome<UInt64>
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
            return .answered(done.rows)
        } catch {
            return .failed("streaming \(ranges.count) sub-range(s) to \(to.address) failed: \(error)")
        }
    }
}

/// The node's side of `RepairTransport` for one table: Merkle trees and range streams through
/// the runner (this node's own work on the thread pool, peers over internode connections).
struct NodeRepairTransport: RepairTransport {
    let runner: RepairRunner
    let table: TableSchema
    let local: NodeID

    func merkleTree(
        of range: TokenRange, depth: Int, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<MerkleTree>) -> Void
    ) {
        let (runner, table, local) = (runner, table, local)
        Task { done(await runner.tree(from: replica, table: table, range: range, depth: depth, local: local)) }
    }

    func stream(
        _ ranges: [TokenRange], from source: NodeID, to target: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<UInt64>) -> Void
    ) {
        let (runner, table, local) = (runner, table, local)
        Task { done(await runner.stream(from: source, to: target, table: table, ranges: ranges, local: local)) }
    }
}
