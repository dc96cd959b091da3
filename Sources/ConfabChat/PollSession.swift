import Synchronization

/// A long-polling device: the events the hub pushed for it, numbered, kept until the device
/// acknowledges them by polling with a later cursor. At most `maxEvents` unacknowledged events
/// (then the session overflows and ends: the device's next poll starts a new session and is told
/// to `sync`). Presence counts it as connected until `PollSessions` expires it.
final class PollSession: DeviceSink {
    private struct State: Sendable {
        var events: [(seq: UInt64, json: String)] = []
        var nextSeq: UInt64 = 1
        var lastPollMicros: Int64
        var overflowed = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    let deviceId: UInt64
    let userId: String
    /// Random, so one user cannot guess another's session.
    let token: String
    let maxEvents: Int
    private let state: Mutex<State>

    init(deviceId: UInt64, userId: String, nowMicros: Int64, maxEvents: Int = 1000) {
        self.deviceId = deviceId
        self.userId = userId
        self.token = String(UInt64.random(in: 1...UInt64.max), radix: 36)
        self.maxEvents = maxEvents
        self.state = Mutex(State(lastPollMicros: nowMicros))
    }

    /// Nothing to close: every poll presents its token again, and the old one is refused now.
    func signOut() {}

    func push(_ event: EncodedEvent) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { s in
            guard !s.overflowed else { return [] }
            s.events.append((s.nextSeq, event.json))
            s.nextSeq += 1
            if s.events.count > maxEvents {
                s.overflowed = true
                s.events.removeAll()
            }
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    var overflowed: Bool { state.withLock { $0.overflowed } }
    /// Polls parked in `waitForEvent` now (tests wait for one before they send).
    var parkedPolls: Int { state.withLock { $0.waiters.count } }
    var lastPollMicros: Int64 { state.withLock { $0.lastPollMicros } }

    /// The cursor a device passes back to acknowledge everything up to `seq`.
    func cursor(after seq: UInt64) -> String { "\(token).\(deviceId).\(seq)" }

    /// Drops events up to `ackedSeq`; returns the ones after it (and the last seq returned).
    func take(after ackedSeq: UInt64, nowMicros: Int64) -> (events: [String], lastSeq: UInt64) {
        state.withLock { s in
            s.lastPollMicros = nowMicros
            s.events.removeAll { $0.seq <= ackedSeq }
            return (s.events.map(\.json), s.events.last?.seq ?? ackedSeq)
        }
    }

    /// Returns when an event arrives, or when the task is cancelled (the poll timed out).
    func waitForEvent(after ackedSeq: UInt64) async {
        let id: UInt64 = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready: Bool = state.withLock { s in
                    if s.overflowed || s.events.contains(where: { $0.seq > ackedSeq }) || Task.isCancelled {
                        return true
                    }
                    s.waiters[id] = c
                    return false
                }
                if ready { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
