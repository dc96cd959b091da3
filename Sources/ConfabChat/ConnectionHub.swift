import ConfabEngine
import Synchronization

/// The users connected to this server and their devices, in memory only. Delivering an event
/// pushes it into each device's own bounded queue and returns at once: a slow device never holds
/// up the others (it is closed instead, see `Outbox`).
///
/// Also the source of presence: a user is online while they have at least one device here;
/// `lastSeen` is when their last device went away (never stored).
final class ConnectionHub: Sendable {
    private struct State: Sendable {
        var devices: [String: [UInt64: any DeviceSink]] = [:]
        var lastSeen: [String: Int64] = [:]
        var nextId: UInt64 = 1
        /// Devices across all users, kept as they come and go: the gauge and the connection cap
        /// read it on every connect, where summing `devices` under the lock would cost O(users).
        var deviceCount = 0
    }

    private let state = Mutex(State())
    private let clock: any ChatClock

    init(clock: any ChatClock) { self.clock = clock }

    func makeDeviceId() -> UInt64 {
        state.withLock { s in
            defer { s.nextId += 1 }
            return s.nextId
        }
    }

    /// Registers a device; true when this made the user come online.
    @discardableResult
    func add(_ device: any DeviceSink, for userId: String) -> Bool {
        state.withLock { s in
            let wasOnline = !(s.devices[userId]?.isEmpty ?? true)
            if s.devices[userId, default: [:]].updateValue(device, forKey: device.deviceId) == nil {
                s.deviceCount += 1
            }
            ChatMetrics.shared.devices.record(s.deviceCount)
            return !wasOnline
        }
    }

    /// Removes a device; true when this was the user's last one (they went offline).
    @discardableResult
    func remove(deviceId: UInt64, for userId: String) -> Bool {
        let now = clock.nowMicros() / 1000
        return state.withLock { s in
            guard s.devices[userId]?.removeValue(forKey: deviceId) != nil else { return false }
            s.deviceCount -= 1
            ChatMetrics.shared.devices.record(s.deviceCount)
            if s.devices[userId]!.isEmpty {
                s.devices[userId] = nil
                s.lastSeen[userId] = now
                return true
            }
            return false
        }
    }

    /// Pushes `event` to every device of `users` (except `excludingDevice`); returns how many
    /// devices it was queued for.
    @discardableResult
    func deliver(_ event: EncodedEvent, to users: some Sequence<String>, excludingDevice: UInt64? = nil) -> Int {
        let sinks: [any DeviceSink] = state.withLock { s in
            var out: [any DeviceSink] = []
            for u in users { if let d = s.devices[u] { out += d.values.filter { $0.deviceId != excludingDevice } } }
            return out
        }
        for sink in sinks { sink.push(event) }
        ChatMetrics.shared.deliveries.increment(by: sinks.count)
        return sinks.count
    }

    func presence(of userId: String) -> PresenceInfo {
        state.withLock { s in
            let online = !(s.devices[userId]?.isEmpty ?? true)
            return PresenceInfo(
                userId: userId, online: online, lastSeen: online ? clock.nowMicros() / 1000 : s.lastSeen[userId])
        }
    }

    /// The users with a device here now.
    var userIds: [String] { state.withLock { Array($0.devices.keys) } }

    /// The devices of `userId` connected here now.
    func sinks(of userId: String) -> [any DeviceSink] {
        state.withLock { s in s.devices[userId].map { Array($0.values) } ?? [] }
    }

    var connectedUsers: Int { state.withLock { $0.devices.count } }
    var connectedDevices: Int { state.withLock { $0.deviceCount } }
}
