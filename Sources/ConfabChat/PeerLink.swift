import ConfabEngine
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOWebSocket

/// This server's persistent connection to one other chat server's `/internal/ws`, over which it
/// forwards events for the users that server owns. Frames go through a bounded `PeerQueue`; the
/// link reconnects with backoff (50 ms doubling to 1 s) for as long as it runs, and it runs until
/// the peer leaves the live set (`PeerLinks` stops it).
///
/// Guarantee: at most once, in queue order while connected; a frame whose write fails is put back
/// once and sent after the reconnect; frames queued for a peer that never comes back are dropped.
final class PeerLink: Sendable {
    let peerId: String
    let address: String
    let queue: PeerQueue
    private let serverId: String
    private let auth: InternalAuth
    private let clock: any EngineClock
    private let logger: Logger
    private let connected = NIOLockedValueBox(false)

    init(peerId: String, address: String, serverId: String, auth: InternalAuth, clock: any EngineClock, maxFrames: Int, logger: Logger) {
        self.peerId = peerId
        self.address = address
        self.serverId = serverId
        self.auth = auth
        self.clock = clock
        self.logger = logger
        self.queue = PeerQueue(maxFrames: maxFrames)
    }

    var isConnected: Bool { connected.withLockedValue { $0 } }

    func send(_ frame: PeerFrame) {
        if queue.push(frame.encoded()) {
            ChatMetrics.shared.forwarded.increment()
        } else {
            ChatMetrics.shared.forwardDropped.increment()
        }
    }

    /// Connects, writes, reconnects; returns when cancelled.
    func run() async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            let base = address.hasPrefix("https://") ? "wss://" + address.dropFirst(8) : "ws://" + address.dropFirst(address.hasPrefix("http://") ? 7 : 0)
            let url = "\(base)/internal/ws?\(auth.query(serverId: serverId, unixSeconds: clock.nowMicros() / 1_000_000))"
            let reached = NIOLockedValueBox(false)
            do {
                let close = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 8 << 20), logger: logger) { inbound, outbound, _ in
                    self.connected.withLockedValue { $0 = true }
                    reached.withLockedValue { $0 = true }
                    ChatMetrics.shared.peerConnects.increment()
                    defer { self.connected.withLockedValue { $0 = false } }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        // Reading notices the peer going away (and answers its pings) while the
                        // writer waits on an empty queue.
                        group.addTask {
                            for try await _ in inbound.messages(maxSize: 1 << 16) {}
                        }
                        group.addTask {
                            while let text = await self.queue.next() {
                                do {
                                    try await outbound.write(.text(text))
                                } catch {
                                    self.queue.requeue(text)
                                    throw error
                                }
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                if let close, close.closeCode == .unknown(4001) {
                    logger.warning("chat server \(peerId) refused this server's signature on /internal/ws: start every chat server of the deployment with the same --secret-file")
                }
            } catch {
                logger.debug("link to chat server \(peerId) ended", metadata: ["error": "\(error)"])
            }
            if reached.withLockedValue({ $0 }) { backoff = .milliseconds(50) }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(1))
        }
        queue.finish()
    }
}
