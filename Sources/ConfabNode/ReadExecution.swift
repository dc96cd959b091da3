import ConfabEngine
import ConfabRing
import ConfabWire

/// Carries out one `ReadCoordinator`'s actions — data and digest requests, read-repair writes —
/// and feeds the answers back until the coordinator answers. Read repair is blocking: the answer
/// comes only after every repair was acknowledged (the coordinator decides that).
///
/// A replica that cannot be reached fails the read at once (rather than waiting for the
/// deadline) and is marked unreachable, so the caller can retry with the replicas left. The same
/// holds for a read-repair write that fails: the read cannot keep its promise without it.
struct ReadExecution: Sendable {
    enum Event: Sendable {
        case data(NodeID, ReplicaReadResult)
        case digest(NodeID, ReadDigest)
        case repaired(NodeID)
        case repairFailed(NodeID, String, unreachable: Bool)
        case failure(NodeID, String, unreachable: Bool)
        case tick
    }

    let coordinator: ReadCoordinator
    let local: NodeID
    let table: TableSchema
    let processor: CoordinatorProcessor

    /// The outcome, and whether a replica was unreachable (worth one retry).
    func run() async -> (Result<ReadResult, RingError>, sawUnreachable: Bool) {
        var coordinator = self.coordinator
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        let ring = processor.ring
        let deadline = coordinator.deadline
        let timer = Task {
            try? await Task.sleep(for: deadline - ring.now())
            sink.yield(.tick)
        }
        defer {
            timer.cancel()
            sink.finish()
        }
        var sawUnreachable = false
        var actions = coordinator.start()
        var iterator = events.makeAsyncIterator()
        while true {
            for action in actions {
                switch action {
                case .requestData(let query, let node):
                    request(query, from: node, digest: false, sink: sink)
                case .requestDigest(let query, let node):
                    request(query, from: node, digest: true, sink: sink)
                case .sendRepair(let mutation, let node):
                    ring.metrics.readRepairs.increment()
                    repair(mutation, on: node, sink: sink)
                case .succeeded(let result):
                    return (.success(result), sawUnreachable)
                case .failed(let error):
                    return (.failure(error), sawUnreachable)
                }
            }
            guard let event = await iterator.next() else {
                return (
                    .failure(RingError(.readFailure, "the read coordinator stopped without an answer")), sawUnreachable
                )
            }
            switch event {
            case .data(let node, let result): actions = coordinator.onData(from: node, result)
            case .digest(let node, let digest): actions = coordinator.onDigest(from: node, digest)
            case .repaired(let node): actions = coordinator.onRepairAck(from: node)
            case .repairFailed(let node, let reason, let unreachable):
                sawUnreachable = sawUnreachable || unreachable
                actions = coordinator.onRepairFailure(from: node, reason: reason)
            case .failure(let node, let reason, let unreachable):
                sawUnreachable = sawUnreachable || unreachable
                actions = coordinator.onFailure(from: node, reason: reason)
            case .tick: actions = coordinator.onTick(now: ring.now())
            }
        }
    }

    private func request(_ query: SliceQuery, from node: NodeID, digest: Bool, sink: AsyncStream<Event>.Continuation) {
        let processor = self.processor
        let local = self.local
        let table = self.table
        Task {
            do {
                let result: ReplicaReadResponse
                if node == local {
                    let data = try await processor.replica.read(query)
                    result = digest ? .digest(data.digest()) : .data(data)
                } else {
                    let request = ReadRequest(query, schema: table, consistency: .one, digestOnly: digest)
                    let reply = try await processor.messenger.request(
                        .replicaRead(request), to: node.address,
                        timeout: processor.readTimeout)
                    guard case .replicaReadResponse(let r) = reply else {
                        sink.yield(.failure(node, "answered ReplicaRead with \(reply.type)", unreachable: false))
                        return
                    }
                    result = r
                }
                switch result {
                case .data(let data): sink.yield(.data(node, data))
                case .digest(let d): sink.yield(.digest(node, d))
                }
            } catch let failure as InternodeMessenger.InternodeFailure {
                await processor.ring.markUnreachable(node)
                sink.yield(.failure(node, "\(failure)", unreachable: true))
            } catch {
                sink.yield(.failure(node, "\(error)", unreachable: false))
            }
        }
    }

    private func repair(_ mutation: Mutation, on node: NodeID, sink: AsyncStream<Event>.Continuation) {
        let processor = self.processor
        let local = self.local
        let table = self.table
        Task {
            do {
                if node == local {
                    try await processor.replica.apply(mutation)
                } else {
                    let request = WriteRequest(
                        keyspace: table.keyspace, table: table.name, mutation: mutation, consistency: .one)
                    _ = try await processor.messenger.request(
                        .replicaWrite(request), to: node.address,
                        timeout: processor.readTimeout)
                }
                sink.yield(.repaired(node))
            } catch let failure as InternodeMessenger.InternodeFailure {
                await processor.ring.markUnreachable(node)
                sink.yield(.repairFailed(node, "\(failure)", unreachable: true))
            } catch {
                sink.yield(.repairFailed(node, "\(error)", unreachable: false))
            }
        }
    }
}
