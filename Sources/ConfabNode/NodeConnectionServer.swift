import ConfabTransport
import ConfabWire
import Logging
import NIOCore
import Synchronization

/// One client or peer connection of `NodeServer`, in its channel's pipeline (after the frame
/// decoder). Frames are screened by the `ConnectionGate` on the event loop. Data requests (reads,
/// writes and their replica forms) are decoded and coordinated right there
/// (`RequestHandler.respondInline`) and answered from whatever completes them; every other request
/// runs in a task of its own (`RequestHandler.respond` is async). Responses are written on the
/// event loop, with one flush for every response that is ready in the same loop tick.
///
/// Why not `NIOAsyncChannel`: its inbound stream and outbound writer put two more hand-offs on
/// every request (event loop → the connection's task → the request's task → the writer → event
/// loop) and instantiate generic metadata at run time on each (`getCache`,
/// `swift_getGenericMetadata` and their maps were ~8% of a loaded node's samples under the ring
/// bench), and every response was flushed on its own.
///
/// At most `maxInFlight` requests run at once; beyond that the handler stops reading, the socket's
/// receive buffer fills and TCP flow control slows the client. A drained connection (graceful
/// shutdown) reads no new frames, answers the requests it started, then closes.
final class NodeConnectionServer: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let handler: RequestHandler
    let maxInFlight: Int
    let maxFrameBytes: Int
    private var gate: ConnectionGate
    private var context: ChannelHandlerContext?
    private var peer = "?"
    private var inFlight = 0
    private var readHeld = false
    private var flushPending = false
    private var draining = false
    private var closing = false

    init(handler: RequestHandler, maxInFlight: Int, maxFrameBytes: Int, clusterSecret: ClusterSecret?) {
        self.handler = handler
        self.maxInFlight = maxInFlight
        self.maxFrameBytes = maxFrameBytes
        gate = ConnectionGate(secret: clusterSecret, localNodeID: handler.nodeID, clusterName: handler.clusterName)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        handler.metrics.connectionsOpened.increment()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        handler.metrics.connectionsClosed.increment()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !draining, !closing else { return }
        switch unwrapInboundIn(data) {
        case .frame(let frame):
            switch gate.screen(frame) {
            case .pass(let node):
                start(frame, peerNode: node, context: context)
            case .answer(let answer, let close):
                handler.metrics.request(frame.type)
                if case .error(let e) = answer {
                    handler.metrics.error(frame.type, e.code)
                    handler.logger.info(
                        "refused a frame",
                        metadata: ["peer": "\(peer)", "type": "\(frame.type)", "role": "\(gate.role)", "error": "\(e)"])
                }
                send(NodeServer.encode(answer, streamID: frame.streamID, maxFrameBytes: maxFrameBytes), context)
                if close { closeWhenIdle(context) }
            }
        case .damaged(let streamID, let error):
            handler.logger.debug("damaged frame", metadata: ["peer": "\(peer)", "error": "\(error)"])
            handler.metrics.error(.error, error.code)
            send(ByteBuffer(bytes: WireMessage.error(error).encodedFrame(streamID: streamID)), context)
        case .fatal(let streamID, let error):
            handler.logger.info(
                "closing connection after a framing error", metadata: ["peer": "\(peer)", "error": "\(error)"])
            handler.metrics.error(.error, error.code)
            send(ByteBuffer(bytes: WireMessage.error(error).encodedFrame(streamID: streamID)), context)
            closeWhenIdle(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handler.logger.debug("connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if inFlight >= maxInFlight || draining || closing {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Graceful shutdown: no new frames; close once the requests already started are answered.
    func drain() {
        guard let context else { return }
        draining = true
        closeWhenIdle(context)
    }

    private func start(_ frame: Frame, peerNode: String?, context: ChannelHandlerContext) {
        inFlight += 1
        let loop = context.eventLoop
        let me = NIOLoopBound(self, eventLoop: loop)
        let (handler, maxFrameBytes) = (self.handler, self.maxFrameBytes)
        // The data path: no task; the answer comes back through `reply` from whatever completes it.
        let servedInline = handler.respondInline(to: frame, on: loop) { response in
            let bytes = NodeServer.encode(response, streamID: frame.streamID, maxFrameBytes: maxFrameBytes)
            if loop.inEventLoop {
                me.value.sendIfOpen(bytes)
                me.value.finished()
            } else {
                loop.execute {
                    me.value.sendIfOpen(bytes)
                    me.value.finished()
                }
            }
        }
        if servedInline { return }
        Task {
            // Interim frames (repair progress) go out on the request's stream before its response.
            let interim: @Sendable (WireMessage) async -> Void = { message in
                let bytes = NodeServer.encode(message, streamID: frame.streamID, maxFrameBytes: maxFrameBytes)
                loop.execute { me.value.sendIfOpen(bytes) }
            }
            let response = await handler.respond(to: frame, peerNode: peerNode, interim: interim)
            let bytes = response.map { NodeServer.encode($0, streamID: frame.streamID, maxFrameBytes: maxFrameBytes) }
            loop.execute {
                let server = me.value
                if let bytes { server.sendIfOpen(bytes) }
                if let response { handler.answered(frame, with: response) }
                server.finished()
            }
        }
    }

    private func finished() {
        inFlight -= 1
        guard let context else { return }
        if draining || closing {
            closeWhenIdle(context)
        } else if readHeld && inFlight < maxInFlight {
            readHeld = false
            context.read()
        }
    }

    private func sendIfOpen(_ bytes: ByteBuffer) {
        guard let context else { return }
        send(bytes, context)
    }

    /// Writes now; flushes once, after everything else this loop tick writes.
    private func send(_ bytes: ByteBuffer, _ context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(bytes), promise: nil)
        guard !flushPending else { return }
        flushPending = true
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let server = me.value
            server.flushPending = false
            server.context?.flush()
        }
    }

    /// Closes after the started requests are answered (and their answers flushed).
    private func closeWhenIdle(_ context: ChannelHandlerContext) {
        closing = true
        guard inFlight == 0 else { return }
        context.flush()
        context.close(promise: nil)
    }
}

/// The open connections of a `NodeServer`, to drain them on graceful shutdown and to wait until
/// the last has closed.
final class NodeConnections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: (any Channel, @Sendable () -> Void)] = [:]
        var draining = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Tracks `channel`; `drain` runs (on the channel's loop) at graceful shutdown, at once if it
    /// has begun.
    func add(_ channel: any Channel, drain: @escaping @Sendable () -> Void) {
        let id = ObjectIdentifier(channel)
        let drainNow: Bool = state.withLock { s in
            s.open[id] = (channel, drain)
            return s.draining
        }
        if drainNow { channel.eventLoop.execute(drain) }
        channel.closeFuture.whenComplete { _ in
            let waiters: [CheckedContinuation<Void, Never>] = self.state.withLock { s in
                s.open[id] = nil
                guard s.draining, s.open.isEmpty else { return [] }
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
    }

    /// Drains every connection (and every later one) and returns once all have closed.
    func drainAll() async {
        let channels: [(any Channel, @Sendable () -> Void)] = state.withLock { s in
            s.draining = true
            return Array(s.open.values)
        }
        for (channel, drain) in channels { channel.eventLoop.execute(drain) }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done: Bool = state.withLock { s in
                if s.open.isEmpty { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }
}
