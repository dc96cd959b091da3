import NIOCore
import NIOWebSocket
import Synchronization

/// One device's WebSocket, in its channel's pipeline (after `NIOWebSocketFrameAggregator`). Runs on
/// the channel's event loop and owns no task while the device is idle:
///
/// - **out:** the device's `Outbox` signals when it has frames; the handler takes them while the
///   socket is writable and flushes once per batch. A socket that stops reading stays unwritable,
///   its outbox fills, and the outbox closes it (4008), as before;
/// - **in:** text frames go to a `DeviceFrames` queue, handled one at a time and in order by a task
///   that exists only while frames are waiting; reading pauses while 16 are;
/// - **control:** pings are answered, a ping goes out every `pingInterval` and a socket that
///   answered none of the previous one is closed; closes follow RFC 6455 (answer a close; after
///   sending one, wait at most 2 s for the device's, so the device reads the frames before it).
final class DeviceSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    static let pauseAtFrames = 16
    static let closeWait = TimeAmount.seconds(2)

    let frames: DeviceFrames
    let pingInterval: TimeAmount
    /// Admits the device (token, owner, capacity) and then handles its frames; runs in a task.
    let admit: @Sendable (DeviceFrames) async -> Void
    /// The device's socket closed.
    let closed: @Sendable (DeviceFrames) -> Void

    private var context: ChannelHandlerContext?
    private var sentClose = false
    private var readHeld = false
    private var awaitingPong = false
    private var pinger: RepeatedTask?
    /// In `writeOut`: a nested call (from a write's or a flush's events) returns at once.
    private var writing = false

    init(
        frames: DeviceFrames, pingInterval: TimeAmount, admit: @escaping @Sendable (DeviceFrames) async -> Void,
        closed: @escaping @Sendable (DeviceFrames) -> Void
    ) {
        self.frames = frames
        self.pingInterval = pingInterval
        self.admit = admit
        self.closed = closed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        let me = NIOLoopBound(self, eventLoop: loop)
        frames.outbox.drain(whenReady: { loop.execute { me.value.writeOut() } })
        frames.resumeReading = { loop.execute { me.value.resumeReading() } }
        pinger = loop.scheduleRepeatedTask(initialDelay: pingInterval, delay: pingInterval) { _ in me.value.ping() }
        let (admit, frames) = (self.admit, self.frames)
        Task { await admit(frames) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        pinger?.cancel()
        pinger = nil
        frames.outbox.close(code: 1000, reason: "")
        closed(frames)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            guard !sentClose else { return }
            var data = frame.unmaskedData
            let text = data.readString(length: data.readableBytes) ?? ""
            frames.received(text)
        case .binary:
            guard !sentClose else { return }
            frames.outbox.push(EncodedEvent(.error(ChatError(.badFrame, "frames are JSON text, not binary"), ref: nil)))
        case .ping:
            var payload = frame.unmaskedData
            if sentClose { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: payload.readSlice(length: payload.readableBytes)!)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            awaitingPong = false
        case .connectionClose:
            if sentClose {
                context.close(promise: nil)
            } else {
                // Answer with the device's code, then end the connection.
                sentClose = true
                var data = frame.unmaskedData
                let code = data.readWebSocketErrorCode() ?? .normalClosure
                var reply = context.channel.allocator.buffer(capacity: 2)
                reply.write(webSocketErrorCode: code)
                let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(close)).whenComplete { _ in bound.value.close(promise: nil) }
            }
        default:
            break
        }
    }

    /// Hummingbird's server allows half-closed connections: a device that shuts its side (or
    /// vanishes with a FIN) shows up as `inputClosed`, not as the end of the channel.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A frame over the limit (one frame, or assembled from fragments) or a malformed one: 1009 or
    /// 1002. The close frame goes out and the socket stays open, still read (the rest of an
    /// oversized frame is read and dropped), until the device answers or `closeWait` passes: a
    /// socket closed with unread input is reset, and the reset can destroy the close frame.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let code: UInt16
        if let e = error as? NIOWebSocketFrameAggregator.Error, e == .accumulatedFrameSizeIsTooLarge {
            code = 1009
        } else if let e = error as? NIOWebSocketError, e == .invalidFrameLength {
            code = 1009
        } else {
            code = 1002
        }
        frames.outbox.close(code: code, reason: code == 1009 ? "message_too_big" : "protocol_error")
    }

    func read(context: ChannelHandlerContext) {
        if frames.shouldPause {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// NIO reports writability from inside a write or a flush; writing more from there would nest a
    /// flush in a flush. The outbox is drained on the loop's next turn instead.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let me = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { me.value.writeOut() }
        }
        context.fireChannelWritabilityChanged()
    }

    private func resumeReading() {
        guard let context, readHeld, !frames.shouldPause else { return }
        readHeld = false
        context.read()
    }

    /// Writes what the outbox holds while the socket takes it, with one flush.
    private func writeOut() {
        guard let context, context.channel.isActive, !writing else { return }
        writing = true
        defer { writing = false }
        var wrote = false
        while !sentClose, context.channel.isWritable, let item = frames.outbox.take() {
            switch item {
            case .text(let payload):
                let frame = WebSocketFrame(fin: true, opcode: .text, data: payload)
                context.write(wrapOutboundOut(frame), promise: nil)
                wrote = true
            case .close(let code, let reason):
                sentClose = true
                var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
                data.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code)))
                data.writeString(reason)
                context.write(
                    wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: nil)
                wrote = true
                // The device answers with its close (then the socket ends); or it does not.
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: Self.closeWait) { bound.value.close(promise: nil) }
            }
        }
        if wrote { context.flush() }
    }

    private func ping() {
        guard let context, !sentClose else { return }
        if awaitingPong {
            // No answer for a whole interval: the device is gone without a FIN.
            context.close(promise: nil)
            return
        }
        awaitingPong = true
        let frame = WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}

/// The device side of a socket that other threads reach: its outbox, its user once admitted, and
/// its frames waiting to be handled, one at a time and in order, by a task that runs only while
/// frames wait.
final class DeviceFrames: Sendable {
    private struct State {
        var waiting: [String] = []
        var head = 0
        var running = false
        var admitted = false
        var closed = false
        var userId: String?
    }

    let outbox: Outbox
    private let state = Mutex(State())
    private let handle: @Sendable (String, String, Outbox) async -> Void
    private let resume = Mutex<(@Sendable () -> Void)?>(nil)

    init(outbox: Outbox, handle: @escaping @Sendable (_ text: String, _ userId: String, Outbox) async -> Void) {
        self.outbox = outbox
        self.handle = handle
    }

    /// Set by the handler: called when frames drop below the pause mark again.
    var resumeReading: (@Sendable () -> Void)? {
        get { resume.withLock { $0 } }
        set { resume.withLock { $0 = newValue } }
    }

    var userId: String? { state.withLock { $0.userId } }

    var shouldPause: Bool { state.withLock { $0.waiting.count - $0.head >= DeviceSocketHandler.pauseAtFrames } }

    /// A text frame arrived: handled after those before it (and only once the device is admitted).
    func received(_ text: String) {
        let start: Bool = state.withLock { s in
            guard !s.closed else { return false }
            s.waiting.append(text)
            guard s.admitted, !s.running else { return false }
            s.running = true
            return true
        }
        if start { Task { await self.run() } }
    }

    /// Admits the device as `userId`, running `register` under this queue's lock; false (and
    /// `register` not run) when the socket has closed already. So a device is either registered
    /// before its close is seen, and `close()` returns its user to unregister, or never.
    func admit(_ userId: String, register: () -> Void) -> Bool {
        state.withLock { s in
            guard !s.closed else { return false }
            s.userId = userId
            s.admitted = true
            register()
            return true
        }
    }

    /// Handles the frames that wait and those that come, until none waits (called by the admitting
    /// task, which becomes the first runner).
    func handleWaiting() async {
        let start: Bool = state.withLock { s in
            guard s.admitted, !s.running else { return false }
            s.running = true
            return true
        }
        if start { await run() }
    }

    /// The socket closed: frames not yet handled are dropped (their senders retry). Returns the
    /// user it was registered for, if it was.
    func close() -> String? {
        state.withLock { s in
            s.closed = true
            s.waiting = []
            s.head = 0
            return s.admitted ? s.userId : nil
        }
    }

    private func run() async {
        while let (text, userId, resumeNow) = next() {
            if resumeNow { resumeReading?() }
            await handle(text, userId, outbox)
        }
    }

    /// The next frame, or nil (and not running) when none waits.
    private func next() -> (String, String, Bool)? {
        state.withLock { s in
            guard s.head < s.waiting.count, let user = s.userId else {
                s.running = false
                s.waiting.removeAll(keepingCapacity: false)
                s.head = 0
                return nil
            }
            let wasPaused = s.waiting.count - s.head >= DeviceSocketHandler.pauseAtFrames
            let text = s.waiting[s.head]
            s.head += 1
            return (text, user, wasPaused && s.waiting.count - s.head < DeviceSocketHandler.pauseAtFrames)
        }
    }
}
