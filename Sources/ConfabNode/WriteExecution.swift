import ConfabEngine
import ConfabRing
import ConfabWire

/// Carries out one `WriteCoordinator`'s actions: sends, local applies and hints, feeding the
/// answers back as events, until the coordinator is finished. The client's answer is returned as
/// soon as the coordinator emits it; the rest (late acknowledgements, hints for replicas that stay
/// silent until the deadline) continues in the background.
///
/// A replica that cannot be reached is not reported to the coordinator as a failure: it simply
/// does not acknowledge, so it is hinted at the deadline (and marked unreachable for the next
/// requests). Only an error the replica itself reports counts as a failure.
struct WriteExecution: Sendable {
    enum Event: Sendable {
        case ack(NodeID)
        case failure(NodeID, String)
        case tick
    }

    let coordinator: WriteCoordinator
    let local: NodeID
    let table: TableSchema
    let processor: CoordinatorProcessor

    func run() async -> Result<Void, RingError> {
        await withCheckedContinuation { (answer: CheckedContinuation<Result<Void, RingError>, Never>) in
            Task { await drive(answer) }
        }
    }

    private func drive(_ answer: CheckedContinuation<Result<Void, RingError>, Never>) async {
        var coordinator = self.coordinator
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        let ring = processor.ring
        let deadline = coordinator.deadline
        let timer = Task {
            let wait = deadline - ring.now()
            try? await Task.sleep(for: wait)
            sink.yield(.tick)
        }
        var answered = false
        var actions = coordinator.start()
        var iterator = events.makeAsyncIterator()
        while true {
            for action in actions {
                switch action {
                case .send(let mutation, let node):
                    send(mutation, to: node, sink: sink)
                case .storeHint(let mutation, let node):
                    await ring.storeHint(mutation, for: node)
                case .succeeded:
                    if !answered { answer.resume(returning: .success(())) }
                    answered = true
                case .failed(let error):
                    if !answered { answer.resume(returning: .failure(error)) }
                    answered = true
                }
            }
            if coordinator.isFinished { break }
            guard let event = await iterator.next() else { break }
            switch event {
            case .ack(let node): actions = coordinator.onAck(from: node)
            case .failure(let node, let reason): actions = coordinator.onFailure(from: node, reason: reason)
            case .tick: actions = coordinator.onTick(now: ring.now())
            }
        }
        timer.cancel()
        sink.finish()
        if !answered {
            answer.resume(returning: .failure(RingError(.writeFailure, "the write coordinator stopped without an answer")))
        }
    }

    private func send(_ mutation: Mutation, to node: NodeID, sink: AsyncStream<Event>.Continuation) {
        let processor = self.processor
        let local = self.local
        let table = self.table
        Task {
            if node == local {
                do {
                    try await processor.replica.apply(mutation)
                    sink.yield(.ack(node))
                } catch {
                    sink.yield(.failure(node, "\(error)"))
                }
                return
            }
            let request = WriteRequest(keyspace: table.keyspace, table: table.name, mutation: mutation, consistency: .one)
            do {
                let reply = try await processor.messenger.request(.replicaWrite(request), to: node.address,
                                                                  timeout: processor.writeTimeout)
                guard case .replicaWriteAck = reply else {
                    sink.yield(.failure(node, "answered ReplicaWrite with \(reply.type)"))
                    return
                }
                sink.yield(.ack(node))
            } catch is InternodeMessenger.InternodeFailure {
                await processor.ring.markUnreachable(node)
            } catch {
                sink.yield(.failure(node, "\(error)"))
            }
        }
    }
}
