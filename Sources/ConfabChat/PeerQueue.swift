import NIOCore
import Synchronization

/// The frames waiting to go to one peer server, bounded: while the peer is slow or unreachable
/// the queue fills up to `maxFrames` frames or `maxBytes` bytes (a frame may carry a 100,000-
/// character message, so a count alone would let one peer's queue hold gigabytes) and then drops
/// new frames (counted in
/// `confab_chat_forward_dropped_total`). Dropping is safe because forwarded events are live copies
/// only: the recipients catch up with `sync`.
final class PeerQueue: Sendable {
    private struct State: Sendable {
        var queue = CircularBuffer<String>()
        var bytes = 0
        var waiter: CheckedContinuation<String?, Never>?
        var finished = false
    }

    let maxFrames: Int
    let maxBytes: Int
    private let state = Mutex(State())

    init(maxFrames: Int, maxBytes: Int = 32 << 20) {
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
    }

    /// Whether `text` fits beside what is queued (an empty queue takes any one frame).
    private func fits(_ text: String, _ s: State) -> Bool {
        s.queue.isEmpty || (s.queue.count < maxFrames && s.bytes + text.utf8.count <= maxBytes)
    }

    /// Queues a frame; false when it was dropped (queue full or finished). Never blocks.
    @discardableResult
    func push(_ text: String) -> Bool {
        let result: (Bool, CheckedContinuation<String?, Never>?) = state.withLock { s in
            guard !s.finished else { return (false, nil) }
            if let w = s.waiter {
                s.waiter = nil
                return (true, w)
            }
            guard fits(text, s) else { return (false, nil) }
            s.queue.append(text)
            s.bytes += text.utf8.count
            return (true, nil)
        }
        result.1?.resume(returning: text)
        return result.0
    }

    /// Queues `texts` in order under one lock, stopping at the first that does not fit (dropped
    /// with the rest); returns how many were queued.
    func push(contentsOf texts: [String]) -> Int {
        guard !texts.isEmpty else { return 0 }
        let (accepted, waiter): (Int, CheckedContinuation<String?, Never>?) = state.withLock { s in
            guard !s.finished else { return (0, nil) }
            var accepted = 0
            var waiter: CheckedContinuation<String?, Never>?
            if let w = s.waiter {
                s.waiter = nil
                waiter = w
                accepted = 1
            }
            for text in texts[accepted...] {
                guard fits(text, s) else { break }
                s.queue.append(text)
                s.bytes += text.utf8.count
                accepted += 1
            }
            return (accepted, waiter)
        }
        waiter?.resume(returning: texts[0])
        return accepted
    }

    /// Puts back a frame that could not be written (it goes first again).
    func requeue(_ text: String) {
        state.withLock { s in
            guard !s.finished, fits(text, s) else { return }
            s.queue.prepend(text)
            s.bytes += text.utf8.count
        }
    }

    /// The next frame and, to a reader of batches, the frames waiting behind it that fit in one
    /// batch with it (`PeerBatch.maxBytes`); nil as `next()`.
    func nextFrames(batching: Bool) async -> [String]? {
        guard let first = await next() else { return nil }
        guard batching, first.utf8.count < PeerBatch.maxBytes else { return [first] }
        return [first] + drain(maxBytes: PeerBatch.maxBytes - first.utf8.count)
    }

    /// Takes, without waiting, the frames queued now from the front while together they stay
    /// within `maxBytes` (the writer sends them with the one `next()` returned, as one batch).
    func drain(maxBytes: Int) -> [String] {
        state.withLock { s in
            var out: [String] = []
            var total = 0
            while let first = s.queue.first, total + first.utf8.count <= maxBytes {
                s.queue.removeFirst()
                s.bytes -= first.utf8.count
                total += first.utf8.count
                out.append(first)
            }
            return out
        }
    }

    /// Ends the queue: waiting and later `next()` calls return nil.
    func finish() {
        let w: CheckedContinuation<String?, Never>? = state.withLock { s in
            s.finished = true
            s.queue.removeAll()
            s.bytes = 0
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume(returning: nil)
    }

    var count: Int { state.withLock { $0.queue.count } }
    var byteCount: Int { state.withLock { $0.bytes } }
    /// A writer is parked in `next()` (tests wait for one before they cancel it).
    var hasWaiter: Bool { state.withLock { $0.waiter != nil } }

    /// The next frame, waiting for one; nil once finished or when the calling task is cancelled
    /// (so a writer blocked here lets go when its connection drops).
    func next() async -> String? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
                let ready: (Bool, String?) = state.withLock { s in
                    if let t = s.queue.popFirst() {
                        s.bytes -= t.utf8.count
                        return (true, t)
                    }
                    if s.finished || Task.isCancelled { return (true, nil) }
                    s.waiter = c
                    return (false, nil)
                }
                if ready.0 { c.resume(returning: ready.1) }
            }
        } onCancel: {
            let w: CheckedContinuation<String?, Never>? = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume(returning: nil)
        }
    }
}
