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
final class NodeConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<WireMessage>
        var timer: Scheduled<Void>?
        var onInterim: (@Sendable (WireMessage) -> Void)?
    }

    private let address: String
    private let maxFrameBytes: Int
    private var nextStreamID: UInt32 = 1
    private var pending: [UInt32: Pending] = [:]
    private var closedError: ConnectionError?
    private var flushPending = false

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
        let timeout = request.timeout
        let address = self.address
        let timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if let p = self.pending.removeValue(forKey: streamID) {
                p.promise.fail(
                    ConnectionError(
                        .requestTimeout,
                        "no answer from \(address) within \(timeout.nanoseconds / 1_000_000) ms (the request may or may not have been applied)"
                    ))
            }
        }
        pending[streamID] = Pending(promise: responsePromise, timer: timer, onInterim: request.onInterim)
        context.write(wrapOutboundOut(ByteBuffer(bytes: frame.encoded())), promise: promise)
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
            p.timer?.cancel()
            do {
                p.promise.succeed(try WireMessage.decode(frame))
            } catch {
                p.promise.fail(error)
            }
        case .damaged(let streamID, let error):
            if let p = pending.removeValue(forKey: streamID) {
                p.timer?.cancel()
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
        for (_, p) in all {
            p.timer?.cancel()
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
