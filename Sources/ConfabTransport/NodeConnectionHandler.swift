import ConfabWire
import NIOCore

/// A request on its way out: the message, the promise its answer completes (nil for a one-way
/// message, which gets no answer), its timeout, and what to do with interim answers (a Repair's
/// RepairProgress frames) that arrive on its stream before the answer.
struct PendingRequest: Sendable {
    var message: WireMessage
    var promise: EventLoopPromise<WireMessage>?
    var timeout: TimeAmount
    var onInterim: (@Sendable (WireMessage) -> Void)? = nil
}

/// Multiplexes requests over one connection: gives each a free stream id, remembers its promise,
/// and completes it when the response with that id arrives. Runs on the channel's event loop, so
/// its state needs no locks.
///
/// Every promise is completed exactly once: by its response, an Error frame on its stream, its
/// timeout, or the connection closing (`connectionClosed`: the request may or may not have run).
///
/// Timeouts share `DeadlineBuckets` and one armed timer instead of a scheduled task each: every
/// request used to schedule a task and cancel it when its answer came, and NIO cancels by a
/// linear search of the loop's scheduled tasks, so each answer scanned every request in flight.
final class NodeConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<WireMessage>
        /// Tells this request from a later one that reuses its stream id.
        var seq: UInt64
        var timeout: TimeAmount
        var onInterim: (@Sendable (WireMessage) -> Void)?
    }

    /// A request's timeout: its stream and the request's `seq`.
    private struct Deadline {
        var streamID: UInt32
        var seq: UInt64
    }

    private let address: String
    private let maxFrameBytes: Int
    private var nextStreamID: UInt32 = 1
    private var pending: [UInt32: Pending] = [:]
    private var closedError: ConnectionError?
    private var flushPending = false
    private var seq: UInt64 = 0
    private var deadlines = DeadlineBuckets<Deadline>()

    init(address: String, maxFrameBytes: Int) {
        self.address = address
        self.maxFrameBytes = maxFrameBytes
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedError {
            request.promise?.fail(closedError)
            promise?.fail(closedError)
            return
        }
        let streamID = allocateStreamID()
        let frame = request.message.frame(streamID: streamID)
        guard frame.body.count <= maxFrameBytes else {
            let error = ConnectionError(
                .invalidArgument,
                "the \(request.message.type.name ?? "request") of \(frame.body.count) bytes exceeds the \(maxFrameBytes)-byte frame limit; split it"
            )
            request.promise?.fail(error)
            promise?.succeed()
            return
        }
        guard let responsePromise = request.promise else {
            // One-way: nothing will answer on this stream, so nothing to wait for.
            context.write(wrapOutboundOut(ByteBuffer(bytes: frame.encoded())), promise: promise)
            return
        }
        seq &+= 1
        pending[streamID] = Pending(
            promise: responsePromise, seq: seq, timeout: request.timeout, onInterim: request.onInterim)
        let now = Int64(context.eventLoop.now.uptimeNanoseconds)
        deadlines.insert(Deadline(streamID: streamID, seq: seq), deadline: now + request.timeout.nanoseconds)
        arm(context: context, now: now)
        context.write(wrapOutboundOut(ByteBuffer(bytes: frame.encoded())), promise: promise)
    }

    /// Arms a timer for the earliest deadline unless one at least as early is armed.
    private func arm(context: ChannelHandlerContext, now: Int64) {
        guard let timer = deadlines.timerToArm() else { return }
        context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(max(0, timer.at - now))) { [self] in
            expire(context: context, timer: timer.id)
        }
    }

    /// Fails the requests whose timeouts have passed (answered ones are gone from `pending`).
    private func expire(context: ChannelHandlerContext, timer: UInt64) {
        deadlines.fired(timer)
        let now = Int64(context.eventLoop.now.uptimeNanoseconds)
        for d in deadlines.takeDue(now: now) {
            guard let p = pending[d.streamID], p.seq == d.seq else { continue }
            pending[d.streamID] = nil
            p.promise.fail(
                ConnectionError(
                    .requestTimeout,
                    "no answer from \(address) within \(p.timeout.nanoseconds / 1_000_000) ms (the request may or may not have been applied)"
                ))
        }
        arm(context: context, now: now)
    }

    /// Requests written in one event-loop tick (a coordinator's replica requests, many callers'
    /// writes) leave with one flush: the flush runs once the tick's other tasks have written.
    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushPending = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            if frame.type == .repairProgress {
                // Interim: the request stays pending until its answer.
                if let onInterim = pending[frame.streamID]?.onInterim, let message = try? WireMessage.decode(frame) {
                    onInterim(message)
                }
                return
            }
            guard let p = pending.removeValue(forKey: frame.streamID) else { return }  // late: timed out
            do {
                p.promise.succeed(try WireMessage.decode(frame))
            } catch {
                p.promise.fail(error)
            }
        case .damaged(let streamID, let error):
            if let p = pending.removeValue(forKey: streamID) {
                p.promise.fail(error)
            }
        case .fatal(_, let error):
            failAll(ConnectionError(.connectionClosed, "connection to \(address) lost: \(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(
            ConnectionError(
                .connectionClosed,
                "connection to \(address) closed before the answer arrived (the request may or may not have been applied)"
            ))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(ConnectionError(.connectionClosed, "connection to \(address) failed: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: ConnectionError) {
        if closedError == nil { closedError = error }
        let all = pending
        pending.removeAll()
        deadlines.removeAll()
        for (_, p) in all {
            p.promise.fail(error)
        }
    }

    /// The next id not in use, skipping 0 (connection-level errors).
    private func allocateStreamID() -> UInt32 {
        repeat {
            nextStreamID = nextStreamID == UInt32.max ? 1 : nextStreamID + 1
        } while pending[nextStreamID] != nil
        return nextStreamID
    }
}
