import ConfabEngine
import Synchronization

/// How a repair driver reaches the replicas of the ranges it repairs (one table's data): the
/// node implements it over its internode connections and engine, tests over in-process engines.
/// Completions follow `ReplicaTransport`'s rules: exactly once, any thread.
package protocol RepairTransport: Sendable {
    /// `replica`'s Merkle tree of `range` at `depth`.
    func merkleTree(
        of range: TokenRange, depth: Int, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<MerkleTree>) -> Void)

    /// Has `source` stream its data in `ranges` to `target`; answers with the rows the target took.
    func stream(
        _ ranges: [TokenRange], from source: NodeID, to target: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<UInt64>) -> Void)
}

/// Carries out one `RepairSession` (a table's ranges, one at a time) over a `RepairTransport`,
/// driven exactly like `WriteDriver` and `ReadDriver`: answers feed the session under a lock, its
/// effects run after, and the session's current deadline is the one timer on the driver's clock.
///
/// Events reach the caller in the session's order: a range's progress is delivered before the
/// requests of the next range go out, so no later event can overtake it.
package final class RepairDriver<Transport: RepairTransport, Clock: DriverClock>: Sendable {
    package enum Event: Sendable {
        /// One more range done.
        case progress(RepairSession.Progress)
        case finished(RepairSession.Progress)
        case failed(RingError)
    }

    private enum Effect: Sendable {
        case tree(TokenRange, depth: Int, NodeID)
        case stream([TokenRange], from: NodeID, to: NodeID)
        case event(@Sendable (Event) -> Void, Event)
        case cancel(DriverTimer)
        case arm(RingInstant)
    }

    private struct State: ~Copyable {
        var session: RepairSession
        var onEvent: (@Sendable (Event) -> Void)?
        var finished = false
        var timer: DriverTimer?
        /// The deadline `timer` is armed for.
        var armedFor: RingInstant?

        mutating func effects(of actions: [RepairSession.Action]) -> [Effect] {
            var out: [Effect] = []
            for action in actions {
                switch action {
                case .requestTree(let from, let range, let depth): out.append(.tree(range, depth: depth, from))
                case .stream(let from, let to, let ranges): out.append(.stream(ranges, from: from, to: to))
                case .progress(let p): emit(.progress(p), into: &out)
                case .finished(let p):
                    emit(.finished(p), into: &out)
                    finished = true
                case .failed(let error):
                    emit(.failed(error), into: &out)
                    finished = true
                }
            }
            if session.isFinished { finished = true }
            // One timer, always for the session's current deadline.
            let wanted = finished ? nil : session.deadline
            if wanted != armedFor {
                if let timer { out.append(.cancel(timer)) }
                timer = nil
                armedFor = wanted
                if let wanted { out.append(.arm(wanted)) }
            }
            if finished { onEvent = nil }
            return out
        }

        func emit(_ event: Event, into out: inout [Effect]) {
            if let onEvent { out.append(.event(onEvent, event)) }
        }
    }

    private let transport: Transport
    private let clock: Clock
    private let state: Mutex<State>

    package init(session: RepairSession, transport: Transport, clock: Clock) {
        self.transport = transport
        self.clock = clock
        self.state = Mutex(State(session: session))
    }

    package var isFinished: Bool { state.withLock { $0.finished } }

    /// Starts the session; `onEvent` gets each range's progress, then `.finished` or `.failed`.
    package func start(_ onEvent: @escaping @Sendable (Event) -> Void) {
        let now = clock.now()
        let effects = state.withLock { s -> [Effect] in
            s.onEvent = onEvent
            let actions = s.session.start(now: now)
            return s.effects(of: actions)
        }
        perform(effects)
    }

    private func step(_ event: (inout RepairSession, RingInstant) -> [RepairSession.Action]) {
        let now = clock.now()
        let effects = state.withLock { s -> [Effect] in
            guard !s.finished else { return [] }
            let actions = event(&s.session, now)
            return s.effects(of: actions)
        }
        perform(effects)
    }

    /// Events first (see the type's comment), then the timer, then the requests.
    private func perform(_ effects: [Effect]) {
        for case .event(let onEvent, let event) in effects { onEvent(event) }
        for effect in effects {
            switch effect {
            case .cancel(let timer): timer.cancel()
            case .arm(let deadline): arm(deadline)
            default: break
            }
        }
        for effect in effects {
            switch effect {
            case .tree(let range, let depth, let node):
                transport.merkleTree(of: range, depth: depth, from: node) { [self] outcome in
                    switch outcome {
                    case .answered(let tree): step { $0.onTree(tree, from: node, now: $1) }
                    case .failed(let reason), .unreachable(let reason):
                        step { $0.onFailure(from: node, reason: reason, now: $1) }
                    }
                }
            case .stream(let ranges, let from, let to):
                transport.stream(ranges, from: from, to: to) { [self] outcome in
                    switch outcome {
                    case .answered(let rows): step { $0.onStreamDone(from: from, to: to, rows: rows, now: $1) }
                    case .failed(let reason), .unreachable(let reason):
                        step { $0.onFailure(from: from, reason: reason, now: $1) }
                    }
                }
            case .event, .cancel, .arm: break
            }
        }
    }

    private func arm(_ deadline: RingInstant) {
        let timer = clock.schedule(at: deadline) { [self] in
            if clock.now() < deadline {
                arm(deadline)
                return
            }
            step { session, now in session.onTick(now: now) }
        }
        let stale = state.withLock { s -> Bool in
            guard s.armedFor == deadline, !s.finished else { return true }
            s.timer = timer
            return false
        }
        if stale { timer.cancel() }
    }
}
