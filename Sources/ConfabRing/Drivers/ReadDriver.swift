import ConfabEngine
import Synchronization

/// What a `ReadDriver` answers its caller.
package struct ReadDriverAnswer: Sendable {
    package var result: Result<ReadResult, RingError>
    /// A replica could not be reached during this read (worth one retry).
    package var sawUnreachable: Bool
}

/// `ReadDriver`'s effects and state, outside the generic class: nested in it they were generic
/// types too, and every `[ReadDriverEffect]` and `Mutex<ReadDriverState>` looked up its metadata
/// at run time (`getCache` and `_swift_getGenericMetadata`, ~5% of a loaded node's event-loop samples).
private enum ReadDriverEffect: Sendable {
    case request(SliceQuery, NodeID, digestOnly: Bool)
    case repair(Mutation, NodeID)
    case cancel(DriverTimer)
    case answer(@Sendable (ReadDriverAnswer) -> Void, ReadDriverAnswer)
}

private struct ReadDriverState: ~Copyable {
    var coordinator: ReadCoordinator
    var onAnswer: (@Sendable (ReadDriverAnswer) -> Void)?
    var sawUnreachable = false
    var finished = false
    var timer: DriverTimer?

    mutating func effects(of actions: [ReadCoordinator.Action]) -> [ReadDriverEffect] {
        var out: [ReadDriverEffect] = []
        var answer: Result<ReadResult, RingError>?
        for action in actions {
            switch action {
            case .requestData(let query, let node): out.append(.request(query, node, digestOnly: false))
            case .requestDigest(let query, let node): out.append(.request(query, node, digestOnly: true))
            case .sendRepair(let mutation, let node): out.append(.repair(mutation, node))
            case .succeeded(let result): answer = answer ?? .success(result)
            case .failed(let error): answer = answer ?? .failure(error)
            }
        }
        if answer == nil, coordinator.isFinished {
            answer = .failure(RingError(.readFailure, "the read coordinator stopped without an answer"))
        }
        // The answer ends the read: late replies are dropped, as the client has moved on.
        guard let answer, !finished else { return out }
        finished = true
        if let timer {
            out.append(.cancel(timer))
            self.timer = nil
        }
        if let onAnswer {
            self.onAnswer = nil
            out.append(.answer(onAnswer, ReadDriverAnswer(result: answer, sawUnreachable: sawUnreachable)))
        }
        return out
    }
}

/// Carries out one `ReadCoordinator`'s actions over a `ReplicaTransport` — data and digest
/// requests, read-repair writes, the deadline — until it answers. Driven exactly like
/// `WriteDriver` (callbacks under a lock, one deadline on the driver's clock), so the node and the
/// ring simulation run the same code for reads too.
///
/// Read repair is blocking: the answer comes only once every repair was acknowledged (the
/// coordinator decides that). A replica that cannot be reached fails its part at once rather than
/// at the deadline, and the answer says so (`sawUnreachable`): the transport has marked it down, so
/// the caller may retry once with the replicas left.
package final class ReadDriver<Transport: ReplicaTransport, Clock: DriverClock>: Sendable {
    package typealias Answer = ReadDriverAnswer

    package let deadline: RingInstant
    private let transport: Transport
    private let clock: Clock
    private let state: Mutex<ReadDriverState>

    package init(coordinator: ReadCoordinator, transport: Transport, clock: Clock) {
        self.deadline = coordinator.deadline
        self.transport = transport
        self.clock = clock
        self.state = Mutex(ReadDriverState(coordinator: coordinator))
    }

    /// True once the read has answered.
    package var isFinished: Bool { state.withLock { $0.finished } }

    /// Starts the read; `onAnswer` is called exactly once (unless the process dies).
    package func start(_ onAnswer: @escaping @Sendable (Answer) -> Void) {
        let effects = state.withLock { s -> [ReadDriverEffect] in
            s.onAnswer = onAnswer
            let actions = s.coordinator.start()
            return s.effects(of: actions)
        }
        if !isFinished { armTimer() }
        perform(effects)
    }

    package func run() async -> Answer {
        await withCheckedContinuation { (waiter: CheckedContinuation<Answer, Never>) in
            start { waiter.resume(returning: $0) }
        }
    }

    private func step(unreachable: Bool = false, _ event: (inout ReadCoordinator) -> [ReadCoordinator.Action]) {
        let effects = state.withLock { s -> [ReadDriverEffect] in
            guard !s.finished else { return [] }
            if unreachable { s.sawUnreachable = true }
            let actions = event(&s.coordinator)
            return s.effects(of: actions)
        }
        perform(effects)
    }

    private func perform(_ effects: [ReadDriverEffect]) {
        for effect in effects {
            switch effect {
            case .request(let query, let node, let digestOnly):
                transport.read(query, digestOnly: digestOnly, from: node) { [self] outcome in
                    switch outcome {
                    case .answered(.data(let data)): step { $0.onData(from: node, data) }
                    case .answered(.digest(let digest)): step { $0.onDigest(from: node, digest) }
                    case .failed(let reason): step { $0.onFailure(from: node, reason: reason) }
                    case .unreachable(let reason):
                        step(unreachable: true) { $0.onFailure(from: node, reason: reason) }
                    }
                }
            case .repair(let mutation, let node):
                transport.write(mutation, to: node) { [self] outcome in
                    switch outcome {
                    case .answered: step { $0.onRepairAck(from: node) }
                    case .failed(let reason): step { $0.onRepairFailure(from: node, reason: reason) }
                    case .unreachable(let reason):
                        step(unreachable: true) { $0.onRepairFailure(from: node, reason: reason) }
                    }
                }
            case .cancel(let timer): timer.cancel()
            case .answer(let onAnswer, let answer): onAnswer(answer)
            }
        }
    }

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
