import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import NIOPosix

/// Durable storage of hints: a second `StorageEngine` in `<data>/hints`, separate from the data
/// engine so hints never mix with replicated data, are never streamed or repaired, and can be
/// dropped as a whole.
///
/// Layout (docs/node.md § Hints): table 1; partition key = the target's node id (UTF-8);
/// clustering = `ClusteringKey([.int64(hint id)])`, so a target's hints read back in creation
/// order; cells: 0 = the hinted mutation (engine encoding, original timestamps kept), 1 = the
/// target's address when the hint was written ("host:port"), 2 = creation time in wall-clock
/// microseconds (8 bytes big-endian). A delivered or expired hint is deleted with a row
/// tombstone; compaction purges it after the hint engine's grace period.
///
/// Guarantees: `persist` returns once the hint is durable per the group-commit sync mode; after a
/// crash `recover()` returns every persisted hint not yet deleted. Blocking work runs on the
/// thread pool.
struct HintStore: Sendable {
    static let table: TableID = 1
    static let mutationColumn: UInt32 = 0
    static let addressColumn: UInt32 = 1
    static let createdColumn: UInt32 = 2

    let engine: StorageEngine
    let threadPool: NIOThreadPool
    let clock: any EngineClock

    static func open(
        directory: String, threadPool: NIOThreadPool, clock: any EngineClock = SystemClock(),
        fileSystem: any FileSystem = PosixFileSystem()
    ) async throws -> HintStore {
        var options = EngineOptions()
        options.fileSystem = fileSystem
        options.syncMode = .group
        options.memtableBytes = 8 << 20
        options.blockCacheBytes = 4 << 20
        options.walSegmentBytes = 8 << 20
        // Deleted hints need no long grace: nothing replicates them.
        options.gcGraceSeconds = 3600
        let engineOptions = options
        let engine = try await threadPool.runIfActive {
            try StorageEngine.open(directory: directory, options: engineOptions)
        }
        return HintStore(engine: engine, threadPool: threadPool, clock: clock)
    }

    func persist(_ hint: Hint) async throws {
        let now = clock.nowMicros()
        var created: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) {
            created.append(UInt8(truncatingIfNeeded: UInt64(bitPattern: now) >> UInt64(shift)))
        }
        let row = RowFragment(
            liveness: LivenessInfo(timestamp: now),
            cells: [
                Cell(column: Self.mutationColumn, timestamp: now, value: hint.mutation.encoded()),
                Cell(column: Self.addressColumn, timestamp: now, value: Array(hint.target.address.description.utf8)),
                Cell(column: Self.createdColumn, timestamp: now, value: created),
            ])
        try await engine.write(
            Mutation(
                table: Self.table, partitionKey: Array(hint.target.id.utf8),
                rows: [.init(clustering: Self.clustering(hint.id), fragment: row)]))
    }

    func delete(id: UInt64, target: NodeID) async throws {
        let now = clock.nowMicros()
        // +1 µs: a delete in the same microsecond as the write must still shadow it.
        let deletion = DeletionTime(timestamp: now + 1, localDeletionTime: now / 1_000_000)
        try await engine.write(
            Mutation(
                table: Self.table, partitionKey: Array(target.id.utf8),
                rows: [.init(clustering: Self.clustering(id), fragment: RowFragment(deletion: deletion))]))
    }

    /// Every live hint, with its mutation (tests and tools). `now` is the ring clock at recovery:
    /// a hint's age is carried over from its wall-clock creation time, so the window and max age
    /// keep counting across restarts.
    func recover(now: RingInstant) async throws -> [Hint] {
        try await scan(now: now) { ref, row in
            guard let bytes = row.value(Self.mutationColumn), let mutation = try? Mutation.decode(bytes) else {
                return nil
            }
            return Hint(id: ref.id, target: ref.target, mutation: mutation, createdAt: ref.createdAt)
        }
    }

    /// What the hint queue keeps of every live hint (no mutations: they stay on disk until
    /// replayed, `HintRef`).
    func recoverRefs(now: RingInstant) async throws -> [HintRef] {
        try await scan(now: now) { ref, _ in ref }
    }

    /// Every live hint row as a `HintRef` (age carried over as `recover` says), mapped by `make`.
    private func scan<T: Sendable>(now: RingInstant, _ make: @escaping @Sendable (HintRef, ResultRow) -> T?)
        async throws -> [T]
    {
        let engine = self.engine
        let wallNow = clock.nowMicros()
        return try await threadPool.runIfActive {
            var targets: [[UInt8]] = []
            try engine.scan(table: Self.table, tokens: Int64.min...Int64.max) { entry in
                if targets.last != entry.partitionKey { targets.append(entry.partitionKey) }
                return true
            }
            var out: [T] = []
            for target in Set(targets) {
                let id = String(decoding: target, as: UTF8.self)
                let rows = try engine.read(SliceQuery(table: Self.table, partitionKey: target, limit: Int.max)).rows
                for row in rows {
                    guard let comps = ClusteringKey.components(of: row.clustering),
                        case .int64(let hintID)? = comps.first,
                        let size = row.value(Self.mutationColumn)?.count
                    else { continue }
                    let address =
                        row.value(Self.addressColumn)
                        .flatMap { NodeAddress(hostPort: String(decoding: $0, as: UTF8.self)) }
                        ?? NodeAddress(host: "", port: 0)
                    let created =
                        row.value(Self.createdColumn).map { $0.reduce(Int64(0)) { $0 << 8 | Int64($1) } } ?? wallNow
                    let age = Duration.microseconds(max(0, wallNow - created))
                    let ref = HintRef(
                        id: UInt64(hintID), target: NodeID(id: id, address: address), createdAt: now - age, size: size)
                    if let item = make(ref, row) { out.append(item) }
                }
            }
            return out
        }
    }

    /// The mutation of one hint, read when it is replayed; nil if the store has no such hint
    /// (deleted, or its persist failed).
    func load(id: UInt64, target: NodeID) async throws -> Mutation? {
        let engine = self.engine
        let key = ClusteringKey([.int64(Int64(id))])
        let query = SliceQuery(
            table: Self.table, partitionKey: Array(target.id.utf8),
            lower: ClusteringBound(key, inclusive: true), upper: ClusteringBound(key, inclusive: true), limit: 1)
        return try await threadPool.runIfActive {
            guard let bytes = try engine.read(query).rows.first?.value(Self.mutationColumn) else { return nil }
            return try Mutation.decode(bytes)
        }
    }

    func close() async throws {
        let engine = self.engine
        try await threadPool.runIfActive { try engine.close() }
    }

    static func clustering(_ id: UInt64) -> [UInt8] { ClusteringKey([.int64(Int64(id))]).bytes }
}
