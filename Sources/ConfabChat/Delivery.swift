/// Where the chat services send events for users: the seam between "what happened" and "which
/// server holds the user's connections".
///
/// Guarantee: best effort, at most once per device, in the order `deliver` is called for the
/// same caller. Delivery is not durable — anything that matters (messages, read cursors,
/// membership) is in the ring before it is delivered, and a device that missed an event catches
/// up with `sync`. Typing and presence are never stored and simply lost if undeliverable.
///
/// `ChatServer` uses `ForwardingDelivery`: users grouped by owner server, local ones to the hub,
/// the rest forwarded to their owners over `/internal/ws` (docs/chat_protocol.md, "Many
/// servers"). `LocalDelivery` is the hub alone (tests, one server).
public protocol Delivery: Sendable {
    func deliver(_ event: ServerEvent, to users: Set<String>, excludingDevice: UInt64?) async
}

/// Delivers to the devices connected to this server.
struct LocalDelivery: Delivery {
    let hub: ConnectionHub

    func deliver(_ event: ServerEvent, to users: Set<String>, excludingDevice: UInt64?) async {
        hub.deliver(EncodedEvent(event), to: users, excludingDevice: excludingDevice)
    }
}
