/// An event encoded once for every device that gets it.
struct EncodedEvent: Sendable {
    var type: String
    var json: String

    init(_ event: ServerEvent) {
        type = event.type
        json = event.json()
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
