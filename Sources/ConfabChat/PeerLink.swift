import ConfabEngine
import ConfabTransport
import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

/// This server's persistent connection to one other chat server's `/internal/ws`, over which it
/// forwards events for the users that server owns. Frames go through a bounded `PeerQueue`; the
/// link reconnects with backoff (50 ms doubling to 1 s) for as long as it runs, and it runs until
/// the peer leaves the live set (`PeerLinks` stops it).
///
/// Guarantee: at most once, in queue order while connected; the frames whose write fails (one, or
/// a batch's) are put back once and sent first after the reconnect; frames queued for a peer that
/// never comes back are dropped.
final class PeerLink: Sendable {
    let peerId: String
    let address: String
    let queue: PeerQueue
    private let serverId: String
    private let handshake: PeerHandshake
    private let clock: any ChatClock
    private let logger: Logger
    private let connected = Mutex(false)
    /// Whether this link offers batches (`PeerBatch`); off only to act as a server from before them.
    private let batches: Bool
    /// The peer answered `features batch` on this connection: waiting frames may go as one.
    private let peerReadsBatches = PeerBatchSwitch()
    /// Batch frames written (tests check that a burst took that path).
    private let batchCount = Mutex(0)
    /// Users with a frame dropped since the last `resync` was queued for them.
    private let dropped = Mutex<Set<String>>([])
    /// Forwarded sends waiting for the peer's `result`, by request id, and their deadlines.
    private let pending = Mutex(Pending())

    private struct Pending {
        var next: UInt64 = 1
        var waiting: [UInt64: CheckedContinuation<String, any Error>] = [:]
        /// Request ids by deadline (answered ones included until their deadline passes).
        var deadlines = DeadlineBuckets<UInt64>()
        /// Whether the task that fails requests past their deadline (`reap`) is running.
        var reaping = false
    }

    /// The reaper sweeps at most this often: a timeout fires up to this much late.
    static let reapInterval: Duration = .milliseconds(10)

    init(
        peerId: String, address: String, serverId: String, handshake: PeerHandshake, clock: any ChatClock,
        maxFrames: Int,
        maxBytes: Int = 32 << 20, batches: Bool = true, logger: Logger
    ) {
        self.batches = batches
        self.peerId = peerId
        self.address = address
        self.serverId = serverId
        self.handshake = handshake
        self.clock = clock
        self.logger = logger
        self.queue = PeerQueue(maxFrames: maxFrames, maxBytes: maxBytes)
    }

    var isConnected: Bool { connected.withLock { $0 } }

    /// Batch frames this link has written.
    var batchesWritten: Int { batchCount.withLock { $0 } }

    /// The peer said, on the current connection, that it reads batches.
    var peerReadsBatchFrames: Bool { peerReadsBatches.isOn }

    /// Forwarded requests not yet answered or failed (for tests).
    var waitingRequests: Int { pending.withLock { $0.waiting.count } }

    /// Queues `frames` in order, all at once (a writer woken by the first finds the rest waiting);
    /// those that do not fit are dropped as `send` drops them.
    func send(_ frames: [PeerFrame]) {
        flushDropped()
        let accepted = queue.push(contentsOf: frames.map { $0.encoded() })
        ChatMetrics.shared.forwarded.increment(by: accepted)
        if accepted < frames.count {
            ChatMetrics.shared.forwardDropped.increment(by: frames.count - accepted)
            dropped.withLock { d in for frame in frames[accepted...] { d.formUnion(frame.users) } }
        }
    }

    /// Queues a frame. A frame the full queue drops is not forgotten: its users get a `resync`
    /// event as soon as the queue has room (`flushDropped`), so their devices learn that they
    /// missed something and catch up — a device never silently misses an event.
    func send(_ frame: PeerFrame) {
        flushDropped()
        if queue.push(frame.encoded()) {
            ChatMetrics.shared.forwarded.increment()
        } else {
            ChatMetrics.shared.forwardDropped.increment()
            dropped.withLock { $0.formUnion(frame.users) }
        }
    }

    /// Queues one `resync` frame for the users whose frames were dropped, if there are any and
    /// there is room (else they stay marked).
    func flushDropped() {
        let users = dropped.withLock { d -> [String] in
            defer { d = [] }
            return d.sorted()
        }
        guard !users.isEmpty else { return }
        let frame = PeerFrame(type: "resync", users: users, json: ServerEvent.resync.json())
        if !queue.push(frame.encoded()) { dropped.withLock { $0.formUnion(users) } }
    }

    /// Forwards a send to this peer (the chat's owner) and waits for its answer. Fails with
    /// `storage_unavailable` when the queue is full, the link drops before the answer, or
    /// `timeout` passes: whether the owner stored it is then unknown, and the device's retry
    /// (with `retry: true`) finds out.
    func request(_ send: PeerSend, timeout: Duration) async throws -> SendAck {
        let body = try await request(timeout: timeout) { send.encoded(id: $0) }
        switch PeerSend.decodeResult(body) {
        case .success(let ack): return ack
        case .failure(let e): throw e
        }
    }

    /// Sends the frame `make(id)` and waits for the peer's `result <id>` frame; its JSON body.
    func request(timeout: Duration, _ make: (UInt64) -> String) async throws -> String {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<String, any Error>) in
            let deadline =
                Self.nowNanos() + Int64(timeout.components.seconds) * 1_000_000_000
                + timeout.components.attoseconds / 1_000_000_000
            let (id, startReaper) = pending.withLock { p -> (UInt64, Bool) in
                defer { p.next += 1 }
                p.waiting[p.next] = c
                p.deadlines.insert(p.next, deadline: deadline)
                defer { p.reaping = true }
                return (p.next, !p.reaping)
            }
            if startReaper { Task { await self.reap() } }
            guard queue.push(make(id)) else {
                finish(
                    id,
                    .failure(
                        ChatError(
                            .storageUnavailable,
                            "chat server \(peerId) is not keeping up; retry (sends: with retry: true)")))
                return
            }
        }
    }

    private static func nowNanos() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds) }

    /// Fails the requests whose deadlines have passed, while any deadline is held; then ends.
    ///
    /// Why one task: each forwarded send used to start a task that slept for the whole timeout
    /// (10 s) and was not cancelled by the answer — at 2,000 forwarded sends/s, 20,000 sleeping
    /// tasks and 2,000 timer wake-ups a second, on the send path.
    private func reap() async {
        while true {
            let (due, ended) = pending.withLock { p -> ([UInt64], Bool) in
                let ids = p.deadlines.takeDue(now: Self.nowNanos())
                let ended = p.deadlines.count == 0
                if ended { p.reaping = false }
                return (ids, ended)
            }
            for id in due {
                finish(
                    id,
                    .failure(
                        ChatError(
                            .storageUnavailable,
                            "chat server \(peerId) did not answer in time; retry (sends: with retry: true)")))
            }
            if ended { return }
            let wait = pending.withLock { $0.deadlines.earliest }.map { $0 - Self.nowNanos() } ?? 0
            // Up to the earliest deadline held now, but at most a second: a later request with a
            // shorter timeout than those before it is failed at most that late.
            try? await Task.sleep(for: min(.seconds(1), max(Self.reapInterval, .nanoseconds(wait))))
        }
    }

    /// One answer frame from the peer: a forwarded request's result.
    private func answered(_ text: String) {
        if let (id, body) = PeerSend.parseResultFrame(text) { finish(id, .success(body)) }
    }

    private func finish(_ id: UInt64, _ r: Result<String, any Error>) {
        pending.withLock { $0.waiting.removeValue(forKey: id) }?.resume(with: r)
    }

    /// Fails every send waiting for an answer (the connection that carried them ended).
    private func failPending() {
        let all = pending.withLock { p in
            defer { p.waiting = [:] }
            return Array(p.waiting.values)
        }  // their deadlines stay until the reaper takes them
        for c in all {
            c.resume(
                throwing: ChatError(
                    .storageUnavailable, "the link to chat server \(peerId) dropped; retry (with retry: true)"))
        }
    }

    /// Connects, writes, reconnects; returns when cancelled.
    func run() async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            let base =
                address.hasPrefix("https://")
                ? "wss://" + address.dropFirst(8) : "ws://" + address.dropFirst(address.hasPrefix("http://") ? 7 : 0)
            let url = "\(base)/internal/ws"
            let reached = ConnectAttempt()
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: 8 << 20), logger: logger
                ) { inbound, outbound, _ in
                    // The peer must answer the handshake within 10 s (closing ends `inbound`).
                    let watchdog = Task {
                        try await Task.sleep(for: .seconds(10))
                        try? await outbound.close(.unknown(4001), reason: "handshake_timeout")
                    }
                    defer {
                        watchdog.cancel()
                        self.connected.withLock { $0 = false }
                        self.peerReadsBatches.set(false)
                        self.failPending()
                    }
                    let (opened, open) = AsyncStream<Void>.makeStream()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        // Reading runs the handshake, then notices the peer going away (and
                        // answers its pings) while the writer waits on an empty queue.
                        group.addTask {
                            var nonces: (receiver: String, sender: String)?
                            var welcomed = false
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                guard case .text(let text) = message else { continue }
                                if welcomed {
                                    if text == PeerBatch.features {
                                        if self.batches { self.peerReadsBatches.set(true) }
                                    } else if self.batches, let frames = PeerBatch.parse(text) {
                                        for frame in frames { self.answered(frame) }
                                    } else {
                                        self.answered(text)
                                    }
                                } else if let (receiver, sender) = nonces {
                                    guard
                                        self.handshake.verifyWelcome(
                                            text, receiverNonce: receiver, senderNonce: sender) == self.peerId
                                    else {
                                        throw PeerLinkRefused(
                                            "chat server \(self.peerId) did not prove the deployment's secret")
                                    }
                                    welcomed = true
                                    watchdog.cancel()
                                    if self.batches { try await outbound.write(.text(PeerBatch.features)) }
                                    self.connected.withLock { $0 = true }
                                    reached.reached.withLock { $0 = true }
                                    ChatMetrics.shared.peerConnects.increment()
                                    open.yield()
                                } else if let receiver = PeerHandshake.parseChallenge(text) {
                                    let sender = PeerHandshake.nonce()
                                    nonces = (receiver, sender)
                                    try await outbound.write(
                                        .text(
                                            self.handshake.hello(
                                                from: self.serverId, receiverNonce: receiver, senderNonce: sender)))
                                }
                            }
                        }
                        group.addTask {
                            var isOpen = false
                            for await _ in opened {
                                isOpen = true
                                break
                            }
                            guard isOpen else { return }
                            while let frames = await self.queue.nextFrames(batching: self.peerReadsBatches.isOn) {
                                do {
                                    try await outbound.write(.text(PeerBatch.text(of: frames)))
                                    if frames.count > 1 { self.batchCount.withLock { $0 += 1 } }
                                } catch {
                                    for frame in frames.reversed() { self.queue.requeue(frame) }
                                    throw error
                                }
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                if let close, close.closeCode == .unknown(4001) {
                    logger.warning(
                        "chat server \(peerId) refused this server's peer-link handshake: start every chat server of the deployment with the same --secret-file"
                    )
                }
            } catch {
                logger.debug("link to chat server \(peerId) ended", metadata: ["error": "\(error)"])
            }
            if reached.reached.withLock({ $0 }) { backoff = .milliseconds(50) }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(1))
        }
        queue.finish()
        failPending()
    }
}

/// The peer at a link's address failed the handshake (a server without the secret, or another
/// server than the directory names).
private struct PeerLinkRefused: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Whether one connection attempt got as far as the peer (the handshake succeeded): a reference,
/// because the connect handler that sets it escapes.
private final class ConnectAttempt: Sendable {
    let reached = Mutex(false)
}
