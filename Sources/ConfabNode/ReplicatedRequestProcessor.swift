import ConfabEngine
import ConfabRing
import ConfabWire
import NIOCore
import NIOPosix

/// Serves clients' reads and writes as the ring's coordinator: finds the key's replicas on the
/// token ring and runs a `WriteCoordinator` or `ReadCoordinator` (pure state machines) under a
/// `WriteDriver` or `ReadDriver` (ConfabRing; the ring simulation runs the same drivers) over a
/// `NodeReplicaTransport` — ReplicaWrite/ReplicaRead to peers, engine calls for this node, hints to
/// the `ClusterService`.
///
/// Guarantees (per request, see `RequestProcessor`):
/// Replicas and RF are those of the request's keyspace (`ReplicaPlacement`).
///
/// - A write returns once `consistency.blockFor(RF)` replicas acknowledged it durably.
///   `unavailable` means too few replicas were believed alive to try: nothing was sent. `timeout`
///   means too few acknowledged within `writeTimeout`: the write may be applied on some replicas
///   (retrying is idempotent). Every replica that did not acknowledge gets a hint.
/// - A read answers with the newest data of `blockFor` replicas; when they disagree it repairs
///   the stale ones before answering (blocking read repair), so QUORUM reads are monotonic.
public struct ReplicatedRequestProcessor: RequestProcessor {
    let ring: ClusterService
    let replica: LocalReplica
    let messenger: InternodeMessenger
    let schema: SchemaRegistry
    let writeTimeout: Duration
    let readTimeout: Duration
    let clock: any EngineClock
    /// Where request deadlines are scheduled (an event-loop timer each, not a sleeping task), and
    /// where a request that did not come from an event loop applies this node's writes.
    let timers: any EventLoopGroup

    init(
        ring: ClusterService, replica: LocalReplica, messenger: InternodeMessenger, schema: SchemaRegistry,
        writeTimeout: Duration, readTimeout: Duration, clock: any EngineClock = SystemClock(),
        timers: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.ring = ring
        self.replica = replica
        self.messenger = messenger
        self.schema = schema
        self.writeTimeout = writeTimeout
        self.readTimeout = readTimeout
        self.clock = clock
        self.timers = timers
        let ring = self.ring
        self.deadlines = RequestDeadlines(loop: timers.next(), now: { ring.now() })
    }

    /// Every coordinated request's deadline, on one of `timers`' loops.
    let deadlines: RequestDeadlines

    /// The drivers' clock: the ring's monotonic time, deadlines in `deadlines`.
    var driverClock: NodeDriverClock { NodeDriverClock(ring: ring, deadlines: deadlines) }

    public func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        try await withCheckedThrowingContinuation { c in
            write(mutation, consistency: consistency, on: timers.next()) { c.resume(with: $0) }
        }
    }

    public func read(_ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool) async throws -> ReadResponse
    {
        try await withCheckedThrowingContinuation { c in
            read(query, consistency: consistency, digestOnly: digestOnly, on: timers.next()) { c.resume(with: $0) }
        }
    }

    /// Coordinates the write from the calling thread (the connection's event loop) with no task:
    /// the ring snapshot is a lock read, this node's copy is staged here and applied on `loop`, and
    /// `done` is called by whichever event completes the write (a replica's answer, the WAL sync,
    /// the deadline).
    public func write(
        _ mutation: Mutation, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void
    ) {
        do {
            let table = try schema.resolve(id: mutation.table)
            write(mutation, table: table, consistency: consistency, on: loop, done)
        } catch {
            measured(.write, consistency, done)(.failure(error))
        }
    }

    /// The write with its table resolved (once, by the caller): `table` is `mutation.table`'s.
    public func write(
        _ mutation: Mutation, table: TableSchema, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void
    ) {
        let finish = measured(.write, consistency, done)
        do {
            let snapshot = try ring.snapshot()
            // The keyspace's replicas and factor: hints go to whichever of these misses the write.
            let placement = snapshot.placement(schema)
            let replicationFactor = schema.replicationFactor(keyspace: table.keyspace)
            let coordinator = WriteCoordinator(
                mutation: mutation,
                replicas: placement.replicas(
                    forPartitionKey: mutation.partitionKey, configuredFactor: replicationFactor),
                pending: snapshot.pendingReplicas(
                    forPartitionKey: mutation.partitionKey, replicationFactor: replicationFactor),
                consistency: consistency,
                // The configured factor, not the ring's size: a ring that holds fewer nodes than the
                // factor (a node that restarted and has not heard from the others yet) answers
                // `unavailable` for a level it cannot meet instead of acknowledging fewer copies.
                replicationFactor: replicationFactor, isAlive: snapshot.isAlive,
                now: ring.now(),
                timeout: writeTimeout)
            let blockFor = UInt8(clamping: coordinator.blockFor)
            WriteDriver(
                coordinator: coordinator,
                transport: NodeReplicaTransport(
                    processor: self, local: snapshot.local, table: table, timeout: writeTimeout, loop: loop),
                clock: driverClock
            ).start { outcome in
                switch outcome {
                case .success(()): finish(.success(WriteAck(acknowledged: blockFor, required: blockFor)))
                case .failure(let error): finish(.failure(wireError(error)))
                }
            }
        } catch {
            finish(.failure(error))
        }
    }

    /// Coordinates the read like `write(_:consistency:on:_:)`: no task; this node's part runs on
    /// the thread pool, and a read that met an unreachable replica is retried once without it.
    public func read(
        _ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void
    ) {
        do {
            let table = try schema.resolve(id: query.table)
            read(query, table: table, consistency: consistency, digestOnly: digestOnly, on: loop, done)
        } catch {
            measured(.read, consistency, done)(.failure(error))
        }
    }

    /// The read with its table resolved (once, by the caller): `table` is `query.table`'s.
    public func read(
        _ query: SliceQuery, table: TableSchema, consistency: ConsistencyLevel, digestOnly: Bool,
        on loop: any EventLoop, _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void
    ) {
        let finish = measured(.read, consistency, done)
        do {
            try coordinateRead(query, table: table, consistency: consistency, loop: loop, attempt: 1) { result in
                finish(
                    result.map { result in
                        let rows = ReplicaRows(
                            table: query.table, partitionKey: query.partitionKey,
                            rows: result.rows.map {
                                Mutation.Row(clustering: $0.clustering, fragment: RowFragment(cells: $0.cells))
                            },
                            cursor: result.cursor, tombstonesScanned: UInt32(clamping: result.tombstonesScanned))
                        return digestOnly ? .digest(rows.digest()) : .rows(rows)
                    })
            }
        } catch {
            finish(.failure(error))
        }
    }

    /// Wraps `done` to count and time one coordinated request by level (`confab_coordinator_*`).
    private func measured<T>(
        _ op: CoordinatedOp, _ consistency: ConsistencyLevel, _ done: @escaping @Sendable (Result<T, any Error>) -> Void
    ) -> @Sendable (Result<T, any Error>) -> Void {
        let start = ContinuousClock.now
        let metrics = ring.metrics
        return { result in
            var failure: String?
            if case .failure(let error) = result {
                failure =
                    switch (error as? WireError)?.code {
                    case .unavailable?: "unavailable"
                    case .timeout?: "timeout"
                    default: "other"
                    }
            }
            metrics.coordinated(op, consistency, duration: ContinuousClock.now - start, failure: failure)
            done(result)
        }
    }

    private func coordinateRead(
        _ query: SliceQuery, table: TableSchema, consistency: ConsistencyLevel, loop: any EventLoop, attempt: Int,
        _ done: @escaping @Sendable (Result<ReadResult, any Error>) -> Void
    ) throws(WireError) {
        let snapshot = try ring.snapshot()
        let placement = snapshot.placement(schema)
        let replicationFactor = schema.replicationFactor(keyspace: table.keyspace)
        var replicas = placement.replicas(forPartitionKey: query.partitionKey, configuredFactor: replicationFactor)
        // This node first: its own data costs no network round trip.
        if let i = replicas.firstIndex(of: snapshot.local) { replicas.insert(replicas.remove(at: i), at: 0) }
        let coordinator = ReadCoordinator(
            query: query, replicas: replicas,
            pending: snapshot.pendingReplicas(
                forPartitionKey: query.partitionKey, replicationFactor: replicationFactor),
            consistency: consistency,
            replicationFactor: replicationFactor, isAlive: snapshot.isAlive,
            now: ring.now(), nowSeconds: clock.nowSeconds(), timeout: readTimeout)
        ReadDriver(
            coordinator: coordinator,
            transport: NodeReplicaTransport(
                processor: self, local: snapshot.local, table: table, timeout: readTimeout, loop: loop,
                countsRepairs: true),
            clock: driverClock
        ).start { answer in
            switch answer.result {
            case .success(let result):
                done(.success(result))
            case .failure(let error):
                // A replica that could not be reached is now marked down (the transport marks it
                // before reporting it): retry once without it.
                if answer.sawUnreachable, attempt == 1 {
                    do {
                        try coordinateRead(
                            query, table: table, consistency: consistency, loop: loop, attempt: 2, done)
                    } catch {
                        done(.failure(error))
                    }
                    return
                }
                done(.failure(wireError(error)))
            }
        }
    }

    public func status() async throws -> RingStatus {
        var status = await ring.status()
        status.keyspaces = schema.keyspaces.map {
            RingStatus.Keyspace(name: $0.name, replicationFactor: $0.replicationFactor)
        }
        return status
    }

    /// The client-facing error for a ring failure: `unavailable` and `timeout` keep their
    /// meaning (and the ring's message, which names the level and the counts).
    func wireError(_ error: RingError) -> WireError {
        let code: WireError.Code
        switch error.code {
        case .unavailable: code = .unavailable
        case .writeTimeout, .readTimeout: code = .timeout
        default: code = .server
        }
        ring.metrics.coordinatorFailure(code.description.replacingOccurrences(of: " ", with: "_"))
        return WireError(code, error.message)
    }
}
