import Logging
import NIOConcurrencyHelpers

/// The live chat servers, found through the ring itself: each server rewrites its row in
/// `chat.servers` every `heartbeatInterval` with a TTL of `ttlSeconds`, and reads the table every
/// `refreshInterval`. A server that stops heartbeating disappears from everyone's view within the
/// TTL; one that shuts down gracefully deletes its row at once. The live set is hashed onto a
/// `HashRing` that says which server each user belongs to.
final class ServerDirectory: Sendable {
    let serverId: String
    let store: ChatStore
    let ttlSeconds: Int32
    let heartbeatInterval: Duration
    let refreshInterval: Duration
    private let address = NIOLockedValueBox<String>("")
    private let ring = NIOLockedValueBox(HashRing(servers: [:]))
    private let logger: Logger

    init(serverId: String, store: ChatStore, ttlSeconds: Int32 = 10, heartbeatInterval: Duration = .seconds(3),
         refreshInterval: Duration = .seconds(2), logger: Logger) {
        self.serverId = serverId
        self.store = store
        self.ttlSeconds = ttlSeconds
        self.heartbeatInterval = heartbeatInterval
        self.refreshInterval = refreshInterval
        self.logger = logger
    }

    /// This server's public address ("http://host:port"), known once it listens.
    func setAddress(_ a: String) {
        address.withLockedValue { $0 = a }
        ring.withLockedValue { r in
            var s = r.servers
            s[serverId] = a
            r = HashRing(servers: s)
        }
    }

    var ownAddress: String { address.withLockedValue { $0 } }

    /// Live servers as last read (always including this one).
    var servers: [String: String] { ring.withLockedValue { $0.servers } }

    /// The server `userId` belongs to: (id, address).
    func owner(of userId: String) -> (id: String, address: String) {
        ring.withLockedValue { r in
            guard let id = r.owner(of: userId), let a = r.servers[id] else { return (serverId, ownAddress) }
            return (id, a)
        }
    }

    func heartbeat() async throws {
        try await store.putServer(id: serverId, address: ownAddress, ttlSeconds: ttlSeconds)
    }

    func refresh() async throws {
        var live = try await store.servers()
        live[serverId] = ownAddress
        ring.withLockedValue { r in if r.servers != live { r = HashRing(servers: live) } }
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
                do { try await heartbeat() } catch { logger.warning("chat server heartbeat failed", metadata: ["error": "\(error)"]) }
                nextBeat = now + heartbeatInterval
            }
            if now >= nextRefresh {
                do { try await refresh() } catch { logger.debug("reading chat.servers failed", metadata: ["error": "\(error)"]) }
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
