import NIOCore
import Synchronization

/// A WebSocket device's bounded queue of outgoing frames. The hub pushes without waiting; the
/// connection's writer task pulls. When the queue holds more than `maxEvents` frames or `maxBytes`
/// bytes, the device is too slow to keep up: the queue drops everything and hands the writer a
/// close (4008 `slow_consumer`). The device reconnects and catches up with `sync`, so nothing
/// acknowledged is lost — only the live copy.
final class Outbox: DeviceSink {
    enum Item: Sendable, Equatable {
        case text(String)
        /// Close the connection with this WebSocket close code and reason.
        case close(code: UInt16, reason: String)
    }

    private struct State: Sendable {
        var queue = CircularBuffer<String>()
        var bytes = 0
        var closing: Item?
        var waiter: CheckedContinuation<Item, Never>?
        /// A socket that drains the queue itself (`take()`) is told when there is something to take:
        /// once, until a `take()` finds the queue empty.
        var ready: (@Sendable () -> Void)?
        var readySignalled = false
        var closeTaken = false
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

    func push(_ event: EncodedEvent) { push(text: event.json) }

    func push(text: String) {
        var notify: (@Sendable () -> Void)?
        let resume: (CheckedContinuation<Item, Never>, Item)? = state.withLock { s in
            guard s.closing == nil else { return nil }
            if let w = s.waiter {
                s.waiter = nil
                return (w, .text(text))
            }
            s.queue.append(text)
            s.bytes += text.utf8.count
            if s.queue.count > maxEvents || s.bytes > maxBytes {
                s.queue.removeAll()
                s.bytes = 0
                s.closing = .close(code: 4008, reason: "slow_consumer")
                ChatMetrics.shared.slowConsumers.increment()
            }
            notify = Self.signalLocked(&s)
            return nil
        }
        if let (w, item) = resume { w.resume(returning: item) }
        notify?()
    }

    /// Ends the queue: the writer gets `close(code, reason)` after the frames already queued.
    func close(code: UInt16, reason: String) {
        var notify: (@Sendable () -> Void)?
        let waiter: CheckedContinuation<Item, Never>? = state.withLock { s in
            guard s.closing == nil else { return nil }
            s.closing = .close(code: code, reason: reason)
            notify = Self.signalLocked(&s)
            defer { s.waiter = nil }
            return s.queue.isEmpty ? s.waiter : nil
        }
        waiter?.resume(returning: .close(code: code, reason: reason))
        notify?()
    }

    private static func signalLocked(_ s: inout State) -> (@Sendable () -> Void)? {
        guard let ready = s.ready, !s.readySignalled else { return nil }
        s.readySignalled = true
        return ready
    }

    /// Makes this a self-draining queue: `ready` is called (on the pushing thread) whenever there is
    /// something to `take()` and the last `take()` found nothing; at once if there is already.
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
            if let text = s.queue.popFirst() {
                s.bytes -= text.utf8.count
                return .text(text)
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

    /// The next frame to write, waiting for one; after a close, the close item (again and again).
    func next() async -> Item {
        await withCheckedContinuation { (c: CheckedContinuation<Item, Never>) in
            let item: Item? = state.withLock { s in
                if let text = s.queue.popFirst() {
                    s.bytes -= text.utf8.count
                    return .text(text)
                }
                if let closing = s.closing { return closing }
                s.waiter = c
                return nil
            }
            if let item { c.resume(returning: item) }
        }
    }
}
