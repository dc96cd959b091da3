import Synchronization

@testable import ConfabRing

/// A `DriverClock` that moves only when a test says so; timers due by then fire in deadline order.
final class ManualDriverClock: DriverClock {
    private struct State {
        var now = RingInstant.zero
        var nextId = 0
        var timers: [(id: Int, at: RingInstant, body: @Sendable () -> Void)] = []
    }

    private let state = Mutex(State())

    func now() -> RingInstant { state.withLock { $0.now } }

    var pending: Int { state.withLock { $0.timers.count } }

    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let id = state.withLock { s -> Int in
            s.nextId += 1
            s.timers.append((s.nextId, deadline, body))
            return s.nextId
        }
        return DriverTimer { [self] in state.withLock { $0.timers.removeAll { $0.id == id } } }
    }

    /// Moves the clock to `instant`, firing each timer due by then (outside the lock, as a real
    /// timer fires on its own thread).
    func advance(to instant: RingInstant) {
        while true {
            let due = state.withLock { s -> (@Sendable () -> Void)? in
                guard
                    let i = s.timers.indices.filter({ s.timers[$0].at <= instant })
                        .min(by: { s.timers[$0].at < s.timers[$1].at })
                else {
                    s.now = instant
                    return nil
                }
                s.now = max(s.now, s.timers[i].at)
                return s.timers.remove(at: i).body
            }
            guard let due else { return }
            due()
        }
    }
}

/// What callbacks reported, in order (callbacks are `@Sendable`; the log is their shared sink).
final class EventLog<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    func append(_ item: Element) { items.withLock { $0.append(item) } }

    var all: [Element] { items.withLock { $0 } }
}
