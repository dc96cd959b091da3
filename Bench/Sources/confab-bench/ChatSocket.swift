import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// One device's WebSocket to a chat server (`/ws?token=T`), over plain SwiftNIO: the HTTP upgrade
/// through NIO's typed client upgrader, then frames through NIOWebSocket's codec. Deliberately
/// thin, so the idle-connection phase measures the server's cost per connection and a bench
/// process can hold thousands of them; incoming text frames go to `onText` on the event loop with
/// the monotonic time they were read (the receipt time of the latency phases).
final class ChatSocket: Sendable {
    let channel: any Channel
    private let handler: ChatSocketHandler

    private init(channel: any Channel, handler: ChatSocketHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects and upgrades. `source` binds the local address (several loopback addresses give
    /// more ephemeral ports than one). Returns once the upgrade is done; `firstText()` waits for
    /// the server's first frame (`hello` when the token was good).
    ///
    /// A server out of descriptors may leave a connection in its accept queue forever; `timeout`
    /// closes a connection whose upgrade and first frame have not both happened by then.
    static func connect(
        host: String, port: Int, token: String, group: any EventLoopGroup, source: String? = nil,
        timeout: TimeAmount = .seconds(15),
        onText: (@Sendable (ByteBuffer, UInt64) -> Void)? = nil
    ) async throws -> ChatSocket {
        let handler = ChatSocketHandler(onText: onText)
        let address = try SocketAddress(ipAddress: host, port: port)
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        let hostHeader = "\(host):\(port)"
        let path = "/ws?token=\(token)"
        let upgraded = try await bootstrap.connect(to: address) { channel in
            channel.eventLoop.scheduleTask(in: timeout) {
                if !handler.sawFirstText {
                    handler.timedOut(after: timeout)
                    channel.close(promise: nil)
                }
            }
            return channel.eventLoop.makeCompletedFuture {
                let upgrader = NIOTypedWebSocketClientUpgrader<Bool>(
                    maxFrameSize: 1 << 20,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOWebSocketFrameAggregator(
                                    minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 64,
                                    maxAccumulatedFrameSize: 1 << 20))
                            try channel.pipeline.syncOperations.addHandler(handler)
                            return true
                        }
                    })
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
                head.headers.add(name: "Host", value: hostHeader)
                let upgrade = NIOTypedHTTPClientUpgradeConfiguration<Bool>(
                    upgradeRequestHead: head, upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(false) })
                var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
                // The server may send `hello` in the same segment as the 101 response.
                configuration.leftOverBytesStrategy = .forwardBytes
                let result = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                    configuration: configuration)
                return (channel, result)
            }
        }
        let ok: Bool
        do { ok = try await upgraded.1.get() } catch {
            upgraded.0.close(promise: nil)
            throw error
        }
        guard ok else {
            upgraded.0.close(promise: nil)
            throw ChatBenchError("the chat server at \(hostHeader) did not upgrade /ws to a WebSocket")
        }
        return ChatSocket(channel: upgraded.0, handler: handler)
    }

    /// Sends one text frame (masked, as a client must). Callable from any thread.
    func send(_ text: String) {
        let channel = self.channel
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)
        channel.writeAndFlush(frame, promise: nil)
    }

    /// The first text frame the server sent, or an error when the connection closed first.
    func firstText() async throws -> String { try await handler.firstText.futureResult.get() }

    /// Why the connection ended (close code and reason, or the error), once it has.
    func closed() async -> String { (try? await handler.closed.futureResult.get()) ?? "closed" }

    var isActive: Bool { channel.isActive }

    func close() {
        let channel = self.channel
        let frame = WebSocketFrame(
            fin: true, opcode: .connectionClose, maskKey: .random(),
            data: channel.allocator.buffer(bytes: [0x03, 0xE8]))
        channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Frames in: text to `onText`, pings answered, a close echoed. Runs on its channel's event loop.
private final class ChatSocketHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let onText: (@Sendable (ByteBuffer, UInt64) -> Void)?
    private var sawText = false
    private var closeReason: String?

    /// Event loop only.
    var sawFirstText: Bool { sawText }
    func timedOut(after timeout: TimeAmount) {
        closeReason = "no upgrade and first frame within \(timeout.nanoseconds / 1_000_000_000) s"
    }
    /// Made in handlerAdded (during the upgrade), before `connect` returns and anyone waits.
    private let ready = LockedPromises()

    init(onText: (@Sendable (ByteBuffer, UInt64) -> Void)?) { self.onText = onText }

    var firstText: EventLoopPromise<String> { ready.first }
    var closed: EventLoopPromise<String> { ready.closed }

    func handlerAdded(context: ChannelHandlerContext) {
        ready.install(on: context.eventLoop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let payload = frame.unmaskedData
            if !sawText {
                sawText = true
                ready.first.succeed(String(buffer: payload))
            }
            onText?(payload, ProcessIO.nowNanos())
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self).map(String.init) ?? "none"
            let reason = data.readString(length: data.readableBytes) ?? ""
            closeReason = "closed by the server: code \(code)\(reason.isEmpty ? "" : " (\(reason))")"
            let echo = WebSocketFrame(
                fin: true, opcode: .connectionClose, maskKey: .random(),
                data: context.channel.allocator.buffer(bytes: [0x03, 0xE8]))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(echo)).whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if closeReason == nil { closeReason = "error: \(error)" }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let reason = closeReason ?? "connection closed"
        if !sawText { ready.first.fail(ChatBenchError("the WebSocket closed before the first frame: \(reason)")) }
        ready.closed.succeed(reason)
        context.fireChannelInactive()
    }
}

/// The two promises of a socket handler, made when the handler joins its event loop.
private final class LockedPromises: @unchecked Sendable {
    private let lock = NSLock()
    private var promises: (first: EventLoopPromise<String>, closed: EventLoopPromise<String>)?

    func install(on loop: any EventLoop) {
        lock.withLock {
            if promises == nil { promises = (loop.makePromise(), loop.makePromise()) }
        }
    }

    var first: EventLoopPromise<String> { lock.withLock { promises! }.first }
    var closed: EventLoopPromise<String> { lock.withLock { promises! }.closed }
}

/// The few fields the bench reads from server events, found by scanning the compact JSON the
/// server writes (no full JSON parse: the fan-out phase reads tens of thousands of frames a
/// second on the same two cores as the servers).
enum EventScan {
    /// The string value of `"key":"…"` in `buffer` (no escapes inside; the bench's own ids never
    /// have any), or nil.
    static func string(_ key: StaticString, in buffer: ByteBuffer) -> Substring? {
        buffer.withUnsafeReadableBytes { raw -> Substring? in
            guard let start = valueStart(key, raw), start < raw.count, raw[start] == UInt8(ascii: "\"") else {
                return nil
            }
            var end = start + 1
            while end < raw.count, raw[end] != UInt8(ascii: "\"") { end += 1 }
            guard end < raw.count else { return nil }
            return Substring(decoding: UnsafeRawBufferPointer(rebasing: raw[(start + 1)..<end]), as: UTF8.self)
        }
    }

    /// Index just after `"key":` (and any spaces) in `raw`.
    private static func valueStart(_ key: StaticString, _ raw: UnsafeRawBufferPointer) -> Int? {
        let k = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        let n = k.count + 2
        guard raw.count > n else { return nil }
        var i = 0
        outer: while i + n <= raw.count {
            if raw[i] != UInt8(ascii: "\"") {
                i += 1
                continue
            }
            for j in 0..<k.count where raw[i + 1 + j] != k[j] {
                i += 1
                continue outer
            }
            if raw[i + 1 + k.count] != UInt8(ascii: "\"") {
                i += 1
                continue
            }
            var p = i + n
            while p < raw.count, raw[p] == UInt8(ascii: " ") { p += 1 }
            guard p < raw.count, raw[p] == UInt8(ascii: ":") else {
                i += 1
                continue
            }
            p += 1
            while p < raw.count, raw[p] == UInt8(ascii: " ") { p += 1 }
            return p
        }
        return nil
    }
}
