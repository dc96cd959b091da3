import ConfabEngine
import Logging
import Synchronization

/// The links from this server to the other live chat servers, one per peer, created on first use
/// and stopped when the peer leaves the live set or changes address (a restart on another port).
final class PeerLinks: Sendable {
    private struct Entry: Sendable {
        let link: PeerLink
        let task: Task<Void, Never>
    }

    private let serverId: String
    private let directory: ServerDirectory
    private let handshake: PeerHandshake
    private let clock: any ChatClock
    private let maxFrames: Int
    private let maxBytes: Int
    private let batches: Bool
    private let logger: Logger
    private let entries = Mutex<(links: [String: Entry], stopped: Bool)>(([:], false))

    init(
        serverId: String, directory: ServerDirectory, handshake: PeerHandshake, clock: any ChatClock, maxFrames: Int,
        maxBytes: Int, batches: Bool = true,
        logger: Logger
    ) {
        self.batches = batches
        self.serverId = serverId
        self.directory = directory
        self.handshake = handshake
        self.clock = clock
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
        self.logger = logger
    }

    /// The link to `peerId` at its peer-link address, started if needed; nil after `stop()` or
    /// while that address is not known (the peer's row has not been read yet).
    func link(to peerId: String) -> PeerLink? {
        guard let address = directory.peerAddress(of: peerId), !address.isEmpty else { return nil }
        let (link, old): (PeerLink?, Entry?) = entries.withLock { e in
            guard !e.stopped else { return (nil, nil) }
            if let existing = e.links[peerId], existing.link.address == address { return (existing.link, nil) }
            let link = PeerLink(
                peerId: peerId, address: address, serverId: serverId, handshake: handshake, clock: clock,
                maxFrames: maxFrames, maxBytes: maxBytes, batches: batches, logger: logger)
            let old = e.links[peerId]
            e.links[peerId] = Entry(link: link, task: Task { await link.run() })
            return (link, old)
        }
        old?.task.cancel()
        return link
    }

    /// Stops the links to servers no longer in `live` (id → peer-link address).
    func retain(_ live: [String: String]) {
        let gone: [Entry] = entries.withLock { e in
            let dead = e.links.filter { live[$0.key] != $0.value.link.address }
            for id in dead.keys { e.links[id] = nil }
            return Array(dead.values)
        }
        for entry in gone { entry.task.cancel() }
        ChatMetrics.shared.peerLinks.record(entries.withLock { $0.links.count })
    }

    /// Queues the pending `resync` frames of every link (see `PeerLink.flushDropped`).
    func flushDropped() {
        for entry in entries.withLock({ Array($0.links.values) }) { entry.link.flushDropped() }
    }

    /// Stops every link (shutdown); queued frames are dropped.
    func stop() {
        let all: [Entry] = entries.withLock { e in
            e.stopped = true
            defer { e.links = [:] }
            return Array(e.links.values)
        }
        for entry in all { entry.task.cancel() }
    }

    /// Peer id → (connected, frames queued), for `/api/health`.
    var status: [String: (connected: Bool, queued: Int)] {
        entries.withLock { e in e.links.mapValues { ($0.link.isConnected, $0.link.queue.count) } }
    }
}
