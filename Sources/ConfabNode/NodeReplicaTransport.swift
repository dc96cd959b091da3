import ConfabEngine
import ConfabRing
import ConfabWire
import NIOCore

/// The node's side of `ReplicaTransport`: ReplicaWrite/ReplicaRead over the internode
/// connections for peers, the engine for this node, hints through the `ClusterService`. One per
/// coordinated request, carrying its table (resolved once) and its per-replica timeout.
///
/// A peer that cannot be reached (`InternodeMessenger.InternodeFailure`) is marked unreachable
/// here, before the driver hears of it, so the next requests (and a read's one retry) skip it
/// until gossip says otherwise.
struct NodeReplicaTransport: ReplicaTransport {
    let processor: ReplicatedRequestProcessor
    let local: NodeID
    let table: TableSchema
    /// How long one replica request may take on its connection (the driver's deadline is separate).
    let timeout: Duration
    /// The request's event loop: where this node's own copy of a write is applied once durable,
    /// and whose lane carries the replica requests (so their answers arrive on it).
    let loop: any EventLoop
    /// Counts writes as read repairs (the read path's transport).
    var countsRepairs = false

    func write(_ mutation: Mutation, to replica: NodeID, _ done: @escaping @Sendable (ReplicaOutcome<Void>) -> Void) {
        if countsRepairs { processor.ring.metrics.readRepairs.increment() }
        if replica == local {
            processor.replica.apply(mutation, on: loop) { error in
                done(error.map { .failed("\($0)") } ?? .answered(()))
            }
            return
        }
        let request = WriteRequest(keyspace: table.keyspace, table: table.name, mutation: mutation, consistency: .one)
        let ring = processor.ring
        processor.messenger.request(.replicaWrite(request), to: replica.address, timeout: timeout, from: loop) {
            result in
            switch result {
            case .success(.replicaWriteAck): done(.answered(()))
            case .success(let reply): done(.failed("answered ReplicaWrite with \(reply.type)"))
            case .failure(let error as InternodeMessenger.InternodeFailure):
                Task { await ring.markUnreachable(replica) }
                done(.unreachable("\(error)"))
            case .failure(let error): done(.failed("\(error)"))
            }
        }
    }

    func read(
        _ query: SliceQuery, digestOnly: Bool, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<ReplicaReadAnswer>) -> Void
    ) {
        if replica == local {
            processor.replica.read(query) { result in
                switch result {
                case .success(let data): done(.answered(digestOnly ? .digest(data.digest()) : .data(data)))
                case .failure(let error): done(.failed("\(error)"))
                }
            }
            return
        }
        let request = ReadRequest(query, schema: table, consistency: .one, digestOnly: digestOnly)
        let ring = processor.ring
        processor.messenger.request(.replicaRead(request), to: replica.address, timeout: timeout, from: loop) {
            result in
            switch result {
            case .success(.replicaReadResponse(.data(let data))): done(.answered(.data(data)))
            case .success(.replicaReadResponse(.digest(let digest))): done(.answered(.digest(digest)))
            case .success(let reply): done(.failed("answered ReplicaRead with \(reply.type)"))
            case .failure(let error as InternodeMessenger.InternodeFailure):
                Task {
                    await ring.markUnreachable(replica)
                    done(.unreachable("\(error)"))
                }
            case .failure(let error): done(.failed("\(error)"))
            }
        }
    }

    func storeHint(_ mutation: Mutation, for replica: NodeID, _ done: @escaping @Sendable () -> Void) {
        let ring = processor.ring
        Task {
            await ring.storeHint(mutation, for: replica)
            done()
        }
    }
}
