import Logging
import Synchronization

/// The live chat servers, found through the ring itself: each server rewrites its row in
/// `chat.servers` every `heartbeatInterval` with a TTL of `ttlSeconds`, and reads the table every
/// `refreshInterval`. A server that stops heartbeating disappears from everyone's view within the
/// TTL; one that shuts down gracefully deletes its row at once. The live set is hashed onto a
/// `ServerHashing` that says which server each user belongs to.
final class ServerDirectory: Sendable {
    let serverId: String
    let store: ChatCatalog
    let ttlSeconds: Int32
    let heartbeatInterval: Duration
    let refreshInterval: Duration
    private let address = Mutex<String>("")
    private let peerListener = Mutex<String>("")
    private let hashing = Mutex(ServerHashing(servers: [:]))
    /// Server id → its peer-link address, from the same read as `hashing`.
    private let peerAddresses = Mutex<[String: String]>([:])
    /// When this server's heartbeat last reached the ring.
    private let lastBeat = Mutex<ContinuousClock.Instant?>(nil)
    /// Whether a read of `chat.servers` has succeeded since this server's first heartbeat: only
    /// then does its live set include every peer that was live when it joined (`/ready`).
    private let refreshedSinceBeat = Mutex(false)
    private let logger: Logger

    init(
        serverId: String, store: ChatCatalog, ttlSeconds: Int32 = 10, heartbeatInterval: Duration = .seconds(3),
        refreshInterval: Duration = .seconds(2), logger: Logger
    ) {
        self.serverId = serverId
        self.store = store
        self.ttlSeconds = ttlSeconds
        self.heartbeatInterval = heartbeatInterval
        self.refreshInterval = refreshInterval
        self.logger = logger
    }

    /// This server's public address ("http://host:port"), known once it listens.
    func setAddress(_ a: String) {
        address.withLock { $0 = a }
        hashing.withLock { r in
            var s = r.servers
            s[serverId] = a
            r = ServerHashing(servers: s)
        }
    }

    var ownAddress: String { address.withLock { $0 } }

    /// This server's peer-link listener ("http://host:port"), known once it listens.
    func setPeerAddress(_ a: String) {
        peerListener.withLock { $0 = a }
        peerAddresses.withLock { $0[serverId] = a }
    }

    /// Where the other servers' links reach `serverId`, as last read.
    func peerAddress(of serverId: String) -> String? { peerAddresses.withLock { $0[serverId] } }

    /// Live servers' peer-link addresses, as last read.
    var peerLinkAddresses: [String: String] { peerAddresses.withLock { $0 } }

    /// Live servers as last read (always including this one).
    var servers: [String: String] { hashing.withLock { $0.servers } }

    /// The server `userId` belongs to: (id, address).
    func owner(of userId: String) -> (id: String, address: String) {
        hashing.withLock { r in
            guard let id = r.owner(of: userId), let a = r.servers[id] else { return (serverId, ownAddress) }
            return (id, a)
        }
    }

    /// The server that orders `chatId`'s sends (docs/chat_ordering.md): the same hash ring as
    /// users, keyed "#<chatId>" (user ids never start with "#").
    func owner(ofChat chatId: Int64) -> (id: String, address: String) {
        owner(of: "#\(chatId)")
    }

    func heartbeat() async throws {
        let started = ContinuousClock.now
        try await store.putServer(
            id: serverId, address: ownAddress, peerAddress: peerListener.withLock { $0 }, ttlSeconds: ttlSeconds)
        lastBeat.withLock { $0 = started }
    }

    /// Whether the others still count this server live: its row, written at the last successful
    /// heartbeat, has not expired (with a second of margin for their clocks and refreshes). A
    /// server whose heartbeats fail must not keep acting as the owner of users and chats the
    /// others have already moved elsewhere.
    var isLive: Bool {
        guard let last = lastBeat.withLock({ $0 }) else { return false }
        return ContinuousClock.now - last < .seconds(Int64(ttlSeconds)) - .seconds(1)
    }

    /// Heartbeating, and the live set read at least once after the first heartbeat.
    var hasSeenPeers: Bool { isLive && refreshedSinceBeat.withLock { $0 } }

    func refresh() async throws {
        let beatBefore = lastBeat.withLock { $0 } != nil
        defer { if beatBefore { refreshedSinceBeat.withLock { $0 = true } } }
        let rows = try await store.servers()
        var live = rows.mapValues(\.public)
        if isLive { live[serverId] = ownAddress } else { live[serverId] = nil }
        if live.isEmpty { live[serverId] = ownAddress }
        var peers = rows.mapValues(\.peer)
        peers[serverId] = peerListener.withLock { $0 }
        peerAddresses.withLock { $0 = peers }
        hashing.withLock { r in if r.servers != live { r = ServerHashing(servers: live) } }
    }

    /// Heartbeats and refreshes until cancelled; failures are logged and retried next round (the
    /// last known set stays in use meanwhile).
    func run() async {
        let clock = ContinuousClock()
        var nextBeat = clock.now
        var nextRefresh = clock.now
        while !Task.isCancelled {
            let now = clock.now
            if now >= nextBeat {
                do { try await heartbeat() } catch {
                    logger.warning("chat server heartbeat failed", metadata: ["error": "\(error)"])
                }
                nextBeat = now + heartbeatInterval
            }
            if now >= nextRefresh {
                do {
                    try await refresh()
                } catch {
                    logger.debug("reading chat.servers failed", metadata: ["error": "\(error)"])
                    if !isLive {
                        // Neither heartbeat nor refresh reaches the ring: keep only the others as
                        // last known, so this server stops owning what they have moved away.
                        hashing.withLock { r in
                            var s = r.servers
                            s[serverId] = nil
                            if !s.isEmpty, s != r.servers { r = ServerHashing(servers: s) }
                        }
                    }
                }
                nextRefresh = now + refreshInterval
            }
            try? await Task.sleep(until: min(nextBeat, nextRefresh), clock: clock)
        }
    }

    /// Removes this server's row (graceful shutdown).
    func deregister() async {
        try? await store.removeServer(id: serverId)
    }
}
