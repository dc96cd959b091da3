import ConfabEngine
import ConfabRing
import ConfabWire
import Synchronization

/// A single-replica, in-memory `RingStorage` with the ring's merge rules (newest cell wins, row
/// tombstones shadow older writes, TTLs expire by the injected clock). For unit tests of the chat
/// services and for `confab chat serve --memory` experiments; nothing survives the process.
public final class InMemoryRingStorage: RingStorage {
    private struct Partition: Sendable {
        var header = PartitionHeader()
        var rows: [[UInt8]: RowFragment] = [:]
    }

    private struct Key: Hashable, Sendable {
        var table: TableID
        var partition: [UInt8]
    }

    private let state = Mutex<[Key: Partition]>([:])
    private let failing = Mutex<Bool>(false)
    private let losingAnswers = Mutex<Int>(0)
    private let counters = Mutex<(writes: Int, reads: Int)>((0, 0))
    private let written = Mutex<Set<TableID>>([])
    private let clock: any ChatClock

    public init(clock: any ChatClock = SystemClock()) { self.clock = clock }

    /// While true, every request fails as if no replica answered (to test error paths).
    public func setFailing(_ value: Bool) { failing.withLock { $0 = value } }

    /// The next `writes` writes take effect but then fail, as a write whose answer was lost.
    public func failAfterApplying(writes: Int) { losingAnswers.withLock { $0 = writes } }

    /// Writes and reads served so far.
    public var requestCounts: (writes: Int, reads: Int) { counters.withLock { $0 } }

    /// The tables written so far (which tables a chat layer's code path touches).
    public var tablesWritten: Set<TableID> { written.withLock { $0 } }

    @discardableResult
    public func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        if failing.withLock({ $0 }) { throw WireError(.unavailable, "in-memory storage is set to fail") }
        counters.withLock { $0.writes += 1 }
        written.withLock { _ = $0.insert(mutation.table) }
        state.withLock { partitions in
            let key = Key(table: mutation.table, partition: mutation.partitionKey)
            var p = partitions[key] ?? Partition()
            p.header = PartitionHeader.merge(p.header, mutation.header)
            for row in mutation.rows {
                p.rows[row.clustering] =
                    p.rows[row.clustering].map { RowFragment.merge($0, row.fragment) } ?? row.fragment
            }
            partitions[key] = p
        }
        let lose = losingAnswers.withLock { n -> Bool in
            guard n > 0 else { return false }
            n -= 1
            return true
        }
        if lose { throw WireError(.unavailable, "in-memory storage applied the write and was set to lose its answer") }
        return WriteAck(acknowledged: 1, required: 1)
    }

    public func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
        if failing.withLock({ $0 }) { throw WireError(.unavailable, "in-memory storage is set to fail") }
        counters.withLock { $0.reads += 1 }
        let now = clock.nowSeconds()
        let partition =
            state.withLock { $0[Key(table: query.table, partition: query.partitionKey)] } ?? Partition()
        var low: [UInt8] = [0]
        var high: [UInt8]? = nil
        if let l = query.lower {
            low = l.inclusive ? l.prefix : (InternalKey.prefixSuccessor(l.prefix) ?? [0xFF, 0xFF])
        }
        if let u = query.upper {
            high = u.inclusive ? InternalKey.prefixSuccessor(u.prefix) : u.prefix
        }
        var keys = partition.rows.keys.filter { k in
            compareBytes(k, low) >= 0 && (high.map { compareBytes(k, $0) < 0 } ?? true)
        }.sorted { compareBytes($0, $1) < 0 }
        if query.reversed { keys.reverse() }
        if let c = query.cursor {
            keys = keys.filter { query.reversed ? compareBytes($0, c) < 0 : compareBytes($0, c) > 0 }
        }
        // As a node answers: stop at the row limit or after the row that reaches the byte limit
        // (the engine's measure, `SliceQuery.rowBytes` of the stored encoding), with a cursor there.
        var out: [Mutation.Row] = []
        var bytes = 0
        var encoded: [UInt8] = []
        var cursor: [UInt8]? = nil
        for k in keys {
            let stored = partition.rows[k]!
            var fragment = stored
            if let d = partition.header.deletion(covering: k) { fragment.applyDeletion(d) }
            if let d = fragment.deletion { fragment.applyDeletion(d) }
            guard fragment.isLive(now: now) else { continue }
            out.append(.init(clustering: k, fragment: stored))
            encoded.removeAll(keepingCapacity: true)
            EntryValue.encodeRow(stored, into: &encoded)
            bytes += SliceQuery.rowBytes(clustering: k.count, encoded: encoded.count)
            if out.count == query.limit || bytes >= query.byteLimit ?? .max {
                cursor = k
                break
            }
        }
        return ReplicaRows(
            table: query.table, partitionKey: query.partitionKey, header: partition.header, rows: out, cursor: cursor)
    }
}
