import ConfabEngine
import ConfabRing
import ConfabWire
import NIOCore
import Synchronization

/// Carries out one `WriteCoordinator`'s actions: sends, local applies and hints, feeding the
/// answers back as events, until the coordinator is finished. The client's answer is returned as
/// soon as the coordinator emits it; the rest (late acknowledgements, hints for replicas that stay
/// silent until the deadline) continues in the background.
///
/// A replica that cannot be reached is not reported to the coordinator as a failure: it simply
/// does not acknowledge, so it is hinted at the deadline (and marked unreachable for the next
/// requests). Only an error the replica itself reports counts as a failure.
///
/// Why callbacks under a lock rather than a driver task reading an event stream: this runs for
/// every write, and on a small machine each task, stream hand-off and sleeping timer task is a
/// scheduling round that the replicas' answers wait behind (with this, peak RF-3 QUORUM writes
/// rose about 1.5× on the 2-core dev machine, `confab-bench ring`).
/// So remote replicas answer through their connection's future, the deadline is an event-loop
/// timer, and only the local apply (and hint storage) runs as a task. Events are applied to the
/// coordinator one at a time under the lock; its actions are carried out after the lock is
/// released, in the order the coordinator emitted them.
final class WriteExecution: Sendable {
    private enum Effect: Sendable {
        case send(Mutation, NodeID)
        case storeHint(Mutation, NodeID)
        case answer(Result<Void, RingError>)
    }

    private struct State: ~Copyable {
        var coordinator: WriteCoordinator
        /// The caller waiting for the answer, once it waits.
        var waiter: CheckedContinuation<Result<Void, RingError>, Never>?
        /// The answer, when it came before the caller waited.
        var early: Result<Void, RingError>?
        var answered = false
        var finished = false
        var timer: Scheduled<Void>?
    }

    let local: NodeID
    let table: TableSchema
    let processor: CoordinatorProcessor
    private let deadline: RingInstant
    private let state: Mutex<State>

    init(coordinator: WriteCoordinator, local: NodeID, table: TableSchema, processor: CoordinatorProcessor) {
        self.local = local
        self.table = table
        self.processor = processor
        self.deadline = coordinator.deadline
        self.state = Mutex(State(coordinator: coordinator))
    }

    func run() async -> Result<Void, RingError> {
        let effects = step { $0.start() }
        if !state.withLock({ $0.finished }) { armTimer() }
        // Sends first: storing a hint now waits for it to be durable, which must not hold back the
        // replicas after it. The start's hints are stored before the caller waits, so the write is
        // acknowledged only once they are on disk.
        for effect in effects {
            switch effect {
            case .send(let mutation, let node): send(mutation, to: node)
            case .storeHint: break
            case .answer(let result): deliver(result)
            }
        }
        for case .storeHint(let mutation, let node) in effects { await processor.ring.storeHint(mutation, for: node) }
        return await withCheckedContinuation { (waiter: CheckedContinuation<Result<Void, RingError>, Never>) in
            let early = state.withLock { s -> Result<Void, RingError>? in
                if let early = s.early { return early }
                s.waiter = waiter
                return nil
            }
            if let early { waiter.resume(returning: early) }
        }
    }

    /// Applies one event to the coordinator and returns what to do, in the coordinator's order.
    /// Once it is finished nothing more happens (late events are dropped, the timer cancelled).
    private func step(_ event: (inout WriteCoordinator) -> [WriteCoordinator.Action]) -> [Effect] {
        let (effects, timer) = state.withLock { s -> ([Effect], Scheduled<Void>?) in
            guard !s.finished else { return ([], nil) }
            var effects: [Effect] = []
            for action in event(&s.coordinator) {
                switch action {
                case .send(let mutation, let node): effects.append(.send(mutation, node))
                case .storeHint(let mutation, let node): effects.append(.storeHint(mutation, node))
                case .succeeded:
                    if !s.answered { effects.append(.answer(.success(()))) }
                    s.answered = true
                case .failed(let error):
                    if !s.answered { effects.append(.answer(.failure(error))) }
                    s.answered = true
                }
            }
            guard s.coordinator.isFinished else { return (effects, nil) }
            s.finished = true
            if !s.answered {
                s.answered = true
                effects.append(
                    .answer(.failure(RingError(.writeFailure, "the write coordinator stopped without an answer"))))
            }
            let timer = s.timer
            s.timer = nil
            return (effects, timer)
        }
        timer?.cancel()
        return effects
    }

    /// An event from a replica's answer or the timer: its effects run here, or — when there are
    /// hints to store, which needs the ring actor — in one task, still in order.
    private func handle(_ event: (inout WriteCoordinator) -> [WriteCoordinator.Action]) {
        let effects = step(event)
        let needsTask = effects.contains { if case .storeHint = $0 { true } else { false } }
        guard needsTask else {
            for effect in effects { perform(effect) }
            return
        }
        let ring = processor.ring
        Task {
            for effect in effects {
                if case .storeHint(let mutation, let node) = effect {
                    await ring.storeHint(mutation, for: node)
                } else {
                    perform(effect)
                }
            }
        }
    }

    private func perform(_ effect: Effect) {
        switch effect {
        case .send(let mutation, let node): send(mutation, to: node)
        case .storeHint(let mutation, let node):
            let ring = processor.ring
            Task { await ring.storeHint(mutation, for: node) }
        case .answer(let result): deliver(result)
        }
    }

    private func deliver(_ result: Result<Void, RingError>) {
        let waiter = state.withLock { s -> CheckedContinuation<Result<Void, RingError>, Never>? in
            guard let waiter = s.waiter else {
                s.early = result
                return nil
            }
            s.waiter = nil
            return waiter
        }
        waiter?.resume(returning: result)
    }

    /// One tick at the deadline (again, should the timer fire early by the ring clock).
    private func armTimer() {
        let ring = processor.ring
        let wait = max(.zero, deadline - ring.now())
        let (seconds, attoseconds) = wait.components
        let scheduled = processor.timers.next().scheduleTask(
            in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        ) { [self] in
            let now = ring.now()
            if now < deadline {
                armTimer()
                return
            }
            handle { $0.onTick(now: now) }
        }
        let stale = state.withLock { s -> Bool in
            if s.finished { return true }
            s.timer = scheduled
            return false
        }
        if stale { scheduled.cancel() }
    }

    private func send(_ mutation: Mutation, to node: NodeID) {
        if node == local {
            let replica = processor.replica
            Task {
                do {
                    try await replica.apply(mutation)
                    handle { $0.onAck(from: node) }
                } catch {
                    handle { $0.onFailure(from: node, reason: "\(error)") }
                }
            }
            return
        }
        let request = WriteRequest(keyspace: table.keyspace, table: table.name, mutation: mutation, consistency: .one)
        let ring = processor.ring
        processor.messenger.request(.replicaWrite(request), to: node.address, timeout: processor.writeTimeout) {
            [self] result in
            switch result {
            case .success(.replicaWriteAck):
                handle { $0.onAck(from: node) }
            case .success(let reply):
                handle { $0.onFailure(from: node, reason: "answered ReplicaWrite with \(reply.type)") }
            case .failure(let error) where error is InternodeMessenger.InternodeFailure:
                Task { await ring.markUnreachable(node) }
            case .failure(let error):
                handle { $0.onFailure(from: node, reason: "\(error)") }
            }
        }
    }
}
