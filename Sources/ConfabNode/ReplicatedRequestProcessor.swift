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
    /// Where request deadlines are scheduled (an event-loop timer each, not a sleeping task).
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
    }

    /// The drivers' clock: the ring's monotonic time, deadlines on `timers`.
    var driverClock: NodeDriverClock { NodeDriverClock(ring: ring, timers: timers) }

    public func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        try await measured("write", consistency) { try await coordinateWrite(mutation, consistency: consistency) }
    }

    public func read(_ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool) async throws -> ReadResponse
    {
        try await measured("read", consistency) {
            try await coordinateRead(query, consistency: consistency, digestOnly: digestOnly)
        }
    }

    /// Counts and times one coordinated request by level (`confab_coordinator_*`).
    private func measured<T>(
        _ op: String, _ consistency: ConsistencyLevel,
        _ body: () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            ring.metrics.coordinated(op, consistency.rawValue, duration: ContinuousClock.now - start, failure: nil)
            return result
        } catch {
            let failure: String? =
                switch (error as? WireError)?.code {
                case .unavailable?: "unavailable"
                case .timeout?: "timeout"
                default: "other"
                }
            ring.metrics.coordinated(op, consistency.rawValue, duration: ContinuousClock.now - start, failure: failure)
            throw error
        }
    }

    private func coordinateWrite(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        let snapshot = try await ring.snapshot()
        let table = try schema.resolve(id: mutation.table)
        // The keyspace's replicas and factor: hints go to whichever of these misses the write.
        let placement = snapshot.placement(schema)
        let coordinator = WriteCoordinator(
            mutation: mutation,
            replicas: placement.replicas(forPartitionKey: mutation.partitionKey, keyspace: table.keyspace),
            pending: snapshot.pendingReplicas(
                forPartitionKey: mutation.partitionKey,
                replicationFactor: schema.replicationFactor(keyspace: table.keyspace)),
            consistency: consistency,
            // The configured factor, not the ring's size: a ring that holds fewer nodes than the
            // factor (a node that restarted and has not heard from the others yet) answers
            // `unavailable` for a level it cannot meet instead of acknowledging fewer copies.
            replicationFactor: schema.replicationFactor(keyspace: table.keyspace), isAlive: snapshot.isAlive,
            now: ring.now(),
            timeout: writeTimeout)
        let blockFor = coordinator.blockFor
        let outcome = await WriteDriver(
            coordinator: coordinator,
            transport: NodeReplicaTransport(
                processor: self, local: snapshot.local, table: table, timeout: writeTimeout),
            clock: driverClock
        ).run()
        switch outcome {
        case .success(()):
            return WriteAck(acknowledged: UInt8(clamping: blockFor), required: UInt8(clamping: blockFor))
        case .failure(let error):
            throw wireError(error)
        }
    }

    private func coordinateRead(_ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool) async throws
        -> ReadResponse
    {
        let table = try schema.resolve(id: query.table)
        var attempt = 0
        while true {
            attempt += 1
            let snapshot = try await ring.snapshot()
            let placement = snapshot.placement(schema)
            var replicas = placement.replicas(forPartitionKey: query.partitionKey, keyspace: table.keyspace)
            // This node first: its own data costs no network round trip.
            if let i = replicas.firstIndex(of: snapshot.local) { replicas.insert(replicas.remove(at: i), at: 0) }
            let coordinator = ReadCoordinator(
                query: query, replicas: replicas,
                pending: snapshot.pendingReplicas(
                    forPartitionKey: query.partitionKey,
                    replicationFactor: schema.replicationFactor(keyspace: table.keyspace)),
                consistency: consistency,
                replicationFactor: schema.replicationFactor(keyspace: table.keyspace), isAlive: snapshot.isAlive,
                now: ring.now(), nowSeconds: clock.nowSeconds(), timeout: readTimeout)
            let answer = await ReadDriver(
                coordinator: coordinator,
                transport: NodeReplicaTransport(
                    processor: self, local: snapshot.local, table: table, timeout: readTimeout, countsRepairs: true),
                clock: driverClock
            ).run()
            switch answer.result {
            case .success(let result):
                let rows = ReplicaRows(
                    table: query.table, partitionKey: query.partitionKey,
                    rows: result.rows.map {
                        Mutation.Row(clustering: $0.clustering, fragment: RowFragment(cells: $0.cells))
                    },
                    cursor: result.cursor, tombstonesScanned: UInt32(clamping: result.tombstonesScanned))
                return digestOnly ? .digest(rows.digest()) : .rows(rows)
            case .failure(let error):
                // A replica that could not be reached is now marked down: retry once without it.
                if answer.sawUnreachable, attempt == 1 { continue }
                throw wireError(error)
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
