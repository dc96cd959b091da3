import ConfabEngine
import Synchronization

/// The long-polling sessions of this server. A session is a device in the hub from its first poll
/// until it has not polled for `idleMicros` (30 s): then it is removed, and the user goes offline
/// if it was their last device.
final class PollSessions: Sendable {
    private let sessions = Mutex<[UInt64: PollSession]>([:])
    let hub: ConnectionHub
    let clock: any ChatClock
    let idleMicros: Int64

    init(hub: ConnectionHub, clock: any ChatClock, idleMicros: Int64 = 30_000_000) {
        self.hub = hub
        self.clock = clock
        self.idleMicros = idleMicros
    }

    /// The session a cursor names, if it is live, belongs to `userId` and has not overflowed, and
    /// the sequence number it acknowledges.
    func session(cursor: String?, userId: String) -> (PollSession, UInt64)? {
        guard let parts = cursor?.split(separator: "."), parts.count == 3, let id = UInt64(parts[1]),
            let seq = UInt64(parts[2]),
            let s = sessions.withLock({ $0[id] }), s.token == parts[0], s.userId == userId, !s.overflowed
        else { return nil }
        return (s, seq)
    }

    /// A new session, registered in the hub; true in the second value when the user came online.
    func open(userId: String) -> (PollSession, Bool) {
        let s = PollSession(deviceId: hub.makeDeviceId(), userId: userId, nowMicros: clock.nowMicros())
        sessions.withLock { $0[s.deviceId] = s }
        return (s, hub.add(s, for: userId))
    }

    /// Ends sessions idle too long or overflowed; returns the users who went offline.
    func expire() -> [String] {
        let now = clock.nowMicros()
        let dead: [PollSession] = sessions.withLock { all in
            let d = all.values.filter { $0.overflowed || now - $0.lastPollMicros > idleMicros }
            for s in d { all[s.deviceId] = nil }
            return d
        }
        return dead.compactMap { hub.remove(deviceId: $0.deviceId, for: $0.userId) ? $0.userId : nil }
    }

    var count: Int { sessions.withLock { $0.count } }
}
