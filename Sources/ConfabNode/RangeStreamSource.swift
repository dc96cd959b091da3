import ConfabEngine
import ConfabRing
import ConfabWire

/// The source side of a repair stream: reads this node's data in some token ranges and sends it
/// to another replica as ReplicaWrite mutations, answering once the receiver acknowledged every
/// one (so "done" means the data is durable there).
///
/// Mutations carry their original timestamps and tombstones, so applying them is idempotent and
/// last-write-wins per cell: a retried or interrupted stream does no harm, and writes that race
/// with it are never overwritten by older streamed data.
struct RangeStreamSource: Sendable {
    let replica: LocalReplica
    let messenger: InternodeMessenger
    /// Per ReplicaWrite; a receiver that does not acknowledge in time fails the stream.
    var writeTimeout: Duration = .seconds(30)
    /// ReplicaWrites in flight at once, so a stream is not one round trip per mutation.
    var window = 16

    func send(table: TableSchema, ranges: [TokenRange], to target: NodeAddress) async throws -> StreamRangesDone {
        var mutations = 0
        var rows = 0
        for range in ranges {
            let batch = try await replica.mutations(table: table.id, range: range)
            var start = 0
            while start < batch.count {
                let chunk = batch[start..<min(start + window, batch.count)]
                start += chunk.count
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for mutation in chunk {
                        group.addTask {
                            let request = WriteRequest(
                                keyspace: table.keyspace, table: table.name, mutation: mutation,
                                consistency: .one)
                            let reply = try await messenger.request(
                                .replicaWrite(request), to: target, timeout: writeTimeout)
                            guard reply == .replicaWriteAck else {
                                throw WireError(
                                    .protocolError, "\(target) answered a streamed ReplicaWrite with \(reply.type)")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                mutations += chunk.count
                rows += chunk.reduce(0) { $0 + $1.rows.count }
            }
        }
        return StreamRangesDone(mutations: UInt32(clamping: mutations), rows: UInt64(rows))
    }
}
