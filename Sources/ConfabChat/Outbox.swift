import NIOCore
import Synchronization

/// A WebSocket device's bounded queue of outgoing frames. The hub pushes without waiting; the
/// socket's handler (`DeviceSocketHandler`) is signalled and takes. When the queue holds more than
/// `maxEvents` frames or `maxBytes` bytes, the device is too slow to keep up: the queue drops
/// everything and hands the socket a close (4008 `slow_consumer`). The device reconnects and
/// catches up with `sync`, so nothing acknowledged is lost — only the live copy.
final class Outbox: DeviceSink {
    enum Item: Sendable, Equatable {
        /// A text frame's payload (an event's shared buffer: queued and written without a copy).
        case text(ByteBuffer)
        /// Close the connection with this WebSocket close code and reason.
        case close(code: UInt16, reason: String)
    }

    private struct State: Sendable {
        /// Allocated small: most devices are idle, and an idle one holds an empty queue.
        var queue = CircularBuffer<ByteBuffer>(initialCapacity: 1)
        var bytes = 0
        var closing: Item?
        var closeTaken = false
        /// Told when there is something to take: once, until a `take()` finds nothing.
        var ready: (@Sendable () -> Void)?
        var readySignalled = false
    }

    let deviceId: UInt64
    let maxEvents: Int
    let maxBytes: Int
    private let state = Mutex(State())

    init(deviceId: UInt64, maxEvents: Int = 1000, maxBytes: Int = 4 << 20) {
        self.deviceId = deviceId
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    func push(_ event: EncodedEvent) { push(payload: event.payload) }

    func push(text: String) { push(payload: ByteBuffer(string: text)) }

    private func push(payload: ByteBuffer) {
        let notify: (@Sendable () -> Void)? = state.withLock { s in
            guard s.closing == nil else { return nil }
            s.queue.append(payload)
            s.bytes += payload.readableBytes
            if s.queue.count > maxEvents || s.bytes > maxBytes {
                s.queue.removeAll()
                s.bytes = 0
                s.closing = .close(code: 4008, reason: "slow_consumer")
                ChatMetrics.shared.slowConsumers.increment()
            }
            return Self.signalLocked(&s)
        }
        notify?()
    }

    /// Ends the queue: the socket takes `close(code, reason)` after the frames already queued.
    func close(code: UInt16, reason: String) {
        let notify: (@Sendable () -> Void)? = state.withLock { s in
            guard s.closing == nil else { return nil }
            s.closing = .close(code: code, reason: reason)
            return Self.signalLocked(&s)
        }
        notify?()
    }

    private static func signalLocked(_ s: inout State) -> (@Sendable () -> Void)? {
        guard let ready = s.ready, !s.readySignalled else { return nil }
        s.readySignalled = true
        return ready
    }

    /// `ready` is called (on the pushing thread) whenever there is something to `take()` and the
    /// last `take()` found nothing; at once if there is already.
    func drain(whenReady ready: @escaping @Sendable () -> Void) {
        let notify: (@Sendable () -> Void)? = state.withLock { s in
            s.ready = ready
            return s.queue.isEmpty && s.closing == nil ? nil : Self.signalLocked(&s)
        }
        notify?()
    }

    /// The next frame, without waiting: then, once the queue is empty, its close item (once); nil
    /// when there is nothing (the next push or close signals `ready` again).
    func take() -> Item? {
        state.withLock { s in
            if let payload = s.queue.popFirst() {
                s.bytes -= payload.readableBytes
                return .text(payload)
            }
            if let closing = s.closing, !s.closeTaken {
                s.closeTaken = true
                return closing
            }
            s.readySignalled = false
            return nil
        }
    }

    /// The user signed out everywhere: close with 4001 (`signed_out`), as a refused token would.
    func signOut() { close(code: 4001, reason: "signed_out") }

    /// Frames queued now (for tests and metrics).
    var count: Int { state.withLock { $0.queue.count } }
}
