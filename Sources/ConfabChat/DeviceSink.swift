import NIOCore

/// An event encoded once for every device that gets it: its JSON, and the same bytes in one
/// buffer that every WebSocket device's frame carries as is (written, not copied, per device).
struct EncodedEvent: Sendable {
    var type: String
    var json: String
    var payload: ByteBuffer

    init(_ event: ServerEvent) {
        self.init(type: event.type, json: event.json())
    }

    init(type: String, json: String) {
        self.type = type
        self.json = json
        payload = ByteBuffer(string: json)
    }
}

/// One connected device of a user: a WebSocket connection or a long-polling session. The hub
/// pushes events into it without waiting; each sink owns a bounded queue and closes itself (a
/// WebSocket with 4008 `slow_consumer`) rather than let a slow reader grow the server's memory.
protocol DeviceSink: AnyObject, Sendable {
    var deviceId: UInt64 { get }
    /// Queues an event for the device. Never blocks.
    func push(_ event: EncodedEvent)
    /// Its user signed out everywhere or changed the password: end the device's session now.
    func signOut()
}
