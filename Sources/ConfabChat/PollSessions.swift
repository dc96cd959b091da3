import ConfabEngine
import Synchronization

/// The long-polling sessions of this server. A session is a device in the hub from its first poll
/// until it has not polled for `idleMicros` (30 s): then it is removed, and the user goes offline
/// if it was their last device.
///
/// At most `maxPerUser` sessions per user (issue 12: each buffers up to 1,000 events, and a client
/// that never sends its cursor back opens a new one on every poll). Opening one more ends the one
/// polled least recently: its next poll gets `reset` and the device catches up with `sync`, so
/// nothing acknowledged is lost — only that device's live buffer.
final class PollSessions: Sendable {
    private struct State {
        var sessions: [UInt64: PollSession] = [:]
        var byUser: [String: Set<UInt64>] = [:]

        mutating func remove(_ s: PollSession) {
            sessions[s.deviceId] = nil
            byUser[s.userId]?.remove(s.deviceId)
            if byUser[s.userId]?.isEmpty == true { byUser[s.userId] = nil }
        }
    }
    private let state = Mutex(State())
    let hub: ConnectionHub
    let clock: any ChatClock
    let idleMicros: Int64
    let maxPerUser: Int

    init(hub: ConnectionHub, clock: any ChatClock, idleMicros: Int64 = 30_000_000, maxPerUser: Int = 8) {
        self.hub = hub
        self.clock = clock
        self.idleMicros = idleMicros
        self.maxPerUser = maxPerUser
    }

    /// The session a cursor names, if it is live, belongs to `userId` and has not overflowed, and
    /// the sequence number it acknowledges.
    func session(cursor: String?, userId: String) -> (PollSession, UInt64)? {
        guard let parts = cursor?.split(separator: "."), parts.count == 3, let id = UInt64(parts[1]),
            let seq = UInt64(parts[2]),
            let s = state.withLock({ $0.sessions[id] }), s.token == parts[0], s.userId == userId, !s.overflowed
        else { return nil }
        return (s, seq)
    }

    /// A new session, registered in the hub; true in the second value when the user came online.
    /// Ends the user's least recently polled session when they would have more than `maxPerUser`.
    func open(userId: String) -> (PollSession, Bool) {
        let s = PollSession(deviceId: hub.makeDeviceId(), userId: userId, nowMicros: clock.nowMicros())
        let evicted: [PollSession] = state.withLock { st in
            st.sessions[s.deviceId] = s
            st.byUser[userId, default: []].insert(s.deviceId)
            let mine = (st.byUser[userId] ?? []).compactMap { st.sessions[$0] }
            guard mine.count > maxPerUser else { return [] }
            let oldest = mine.filter { $0 !== s }.sorted { $0.lastPollMicros < $1.lastPollMicros }
                .prefix(mine.count - maxPerUser)
            for o in oldest { st.remove(o) }
            return Array(oldest)
        }
        for o in evicted { _ = hub.remove(deviceId: o.deviceId, for: userId) }
        return (s, hub.add(s, for: userId))
    }

    /// The user's live sessions here (tests).
    func count(of userId: String) -> Int { state.withLock { $0.byUser[userId]?.count ?? 0 } }

    /// Polls of `userId` parked waiting for an event, over all their sessions.
    func parkedPolls(of userId: String) -> Int {
        let sessions = state.withLock { st in (st.byUser[userId] ?? []).compactMap { st.sessions[$0] } }
        return sessions.reduce(0) { $0 + $1.parkedPolls }
    }

    /// Ends sessions idle too long or overflowed; returns the users who went offline.
    func expire() -> [String] {
        let now = clock.nowMicros()
        let dead: [PollSession] = state.withLock { st in
            let d = st.sessions.values.filter { $0.overflowed || now - $0.lastPollMicros > idleMicros }
            for s in d { st.remove(s) }
            return d
        }
        return dead.compactMap { hub.remove(deviceId: $0.deviceId, for: $0.userId) ? $0.userId : nil }
    }

    var count: Int { state.withLock { $0.sessions.count } }
}
