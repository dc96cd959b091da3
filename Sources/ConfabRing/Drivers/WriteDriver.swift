import ConfabEngine
import Synchronization

/// The answer a `WriteDriver` gives its caller.
package typealias WriteDriverAnswer = Result<Void, RingError>

/// `WriteDriver`'s effects and state, outside the generic class: nested in it they were generic
/// types too, and every `[WriteDriverEffect]` and `Mutex<WriteDriverState>` looked up its
/// metadata at run time (`getCache` and `_swift_getGenericMetadata`, ~5% of a loaded node's event-loop samples).
private enum WriteDriverEffect: Sendable {
    case send(Mutation, NodeID)
    /// `gatesAnswer`: a start hint, which the answer waits for.
    case storeHint(Mutation, NodeID, gatesAnswer: Bool)
    case cancel(DriverTimer)
    case answer(@Sendable (WriteDriverAnswer) -> Void, WriteDriverAnswer)
}

private struct WriteDriverState: ~Copyable {
    var coordinator: WriteCoordinator
    var onAnswer: (@Sendable (WriteDriverAnswer) -> Void)?
    /// The coordinator's answer, held until the start hints are durable.
    var held: WriteDriverAnswer?
    var answered = false
    var startHintsPending = 0
    var finished = false
    var timer: DriverTimer?

    /// Turns the coordinator's actions into effects, and adds the answer once it may go out.
    mutating func effects(of actions: [WriteCoordinator.Action], atStart: Bool = false) -> [WriteDriverEffect] {
        var out: [WriteDriverEffect] = []
        for action in actions {
            switch action {
            case .send(let mutation, let node): out.append(.send(mutation, node))
            case .storeHint(let mutation, let node):
                if atStart { startHintsPending += 1 }
                out.append(.storeHint(mutation, node, gatesAnswer: atStart))
            case .succeeded: hold(.success(()))
            case .failed(let error): hold(.failure(error))
            }
        }
        if coordinator.isFinished, !finished {
            finished = true
            hold(.failure(RingError(.writeFailure, "the write coordinator stopped without an answer")))
            if let timer {
                out.append(.cancel(timer))
                self.timer = nil
            }
        }
        return out + release()
    }

    mutating func hold(_ answer: WriteDriverAnswer) {
        guard !answered else { return }
        answered = true
        held = answer
    }

    mutating func release() -> [WriteDriverEffect] {
        guard startHintsPending == 0, let held, let onAnswer else { return [] }
        self.held = nil
        self.onAnswer = nil
        return [.answer(onAnswer, held)]
    }
}

/// Carries out one `WriteCoordinator`'s actions over a `ReplicaTransport` — sends, hints, the
/// deadline — feeding the answers back until the coordinator is finished. The node runs it for
/// every write it coordinates, the ring simulation for every simulated one: the same code.
///
/// - The caller's answer comes as soon as the coordinator gives it, but never before the hints of
///   the start (replicas already believed down) are durable: a hint that only sat in memory would
///   be lost with the coordinator, after the write was acknowledged.
/// - A replica that cannot be reached is not a failure for the coordinator: it just does not
///   acknowledge, so it is hinted at the deadline. Only an error the replica reports counts.
/// - After the answer the driver keeps going (late acknowledgements, hints at the deadline).
///
/// Why callbacks under a lock rather than a task reading an event stream: this runs for every
/// write, and each task, stream hand-off and sleeping timer task is a scheduling round that the
/// replicas' answers wait behind (peak RF-3 QUORUM writes rose about 1.5× on the 2-core dev machine
/// when the node moved to this style, `confab-bench ring`). Events are applied to the coordinator
/// one at a time under the lock; their effects run after it is released, in the coordinator's order.
package final class WriteDriver<Transport: ReplicaTransport, Clock: DriverClock>: Sendable {
    package typealias Answer = WriteDriverAnswer

    package let deadline: RingInstant
    private let transport: Transport
    private let clock: Clock
    private let state: Mutex<WriteDriverState>

    package init(coordinator: WriteCoordinator, transport: Transport, clock: Clock) {
        self.deadline = coordinator.deadline
        self.transport = transport
        self.clock = clock
        self.state = Mutex(WriteDriverState(coordinator: coordinator))
    }

    /// True once nothing more will happen: every replica answered or the deadline passed.
    package var isFinished: Bool { state.withLock { $0.finished } }

    /// Starts the write; `onAnswer` is called exactly once (unless the process dies).
    package func start(_ onAnswer: @escaping @Sendable (Answer) -> Void) {
        let effects = state.withLock { s -> [WriteDriverEffect] in
            s.onAnswer = onAnswer
            let actions = s.coordinator.start()
            return s.effects(of: actions, atStart: true)
        }
        if !isFinished { armTimer() }
        perform(effects)
    }

    /// A blocking-free convenience for async callers.
    package func run() async -> Answer {
        await withCheckedContinuation { (waiter: CheckedContinuation<Answer, Never>) in
            start { waiter.resume(returning: $0) }
        }
    }

    private func step(_ event: (inout WriteCoordinator) -> [WriteCoordinator.Action]) {
        let effects = state.withLock { s -> [WriteDriverEffect] in
            guard !s.finished else { return [] }
            let actions = event(&s.coordinator)
            return s.effects(of: actions)
        }
        perform(effects)
    }

    /// Sends first: a hint store may wait for the disk, which must not hold back the replicas.
    private func perform(_ effects: [WriteDriverEffect]) {
        for case .send(let mutation, let node) in effects {
            transport.write(mutation, to: node) { [self] outcome in
                switch outcome {
                case .answered: step { $0.onAck(from: node) }
                case .failed(let reason): step { $0.onFailure(from: node, reason: reason) }
                case .unreachable: break  // hinted at the deadline
                }
            }
        }
        for effect in effects {
            switch effect {
            case .send: break
            case .storeHint(let mutation, let node, let gatesAnswer):
                transport.storeHint(mutation, for: node) { [self] in
                    guard gatesAnswer else { return }
                    let release = state.withLock { s -> [WriteDriverEffect] in
                        s.startHintsPending -= 1
                        return s.release()
                    }
                    perform(release)
                }
            case .cancel(let timer): timer.cancel()
            case .answer(let onAnswer, let answer): onAnswer(answer)
            }
        }
    }

    /// One tick at the deadline (again, should the timer fire early by the driver's clock).
    private func armTimer() {
        let timer = clock.schedule(at: deadline) { [self] in
            let now = clock.now()
            if now < deadline {
                armTimer()
                return
            }
            step { $0.onTick(now: now) }
        }
        let stale = state.withLock { s -> Bool in
            if s.finished { return true }
            s.timer = timer
            return false
        }
        if stale { timer.cancel() }
    }
}
