import Dispatch
import Logging
import Synchronization

/// The live chat servers, found through the ring itself: each server rewrites its row in
/// `chat.servers` every `heartbeatInterval` with a new random heartbeat value, and reads the table
/// every `refreshInterval`. A server whose value has not changed for `ttlSeconds` (on the reader's
/// monotonic clock: `PeerLiveness`) leaves everyone's view; one that shuts down gracefully deletes
/// its row at once. The live set is hashed onto a `ServerHashing` that says which server each user
/// and chat belongs to.
///
/// It also keeps this server's ownership lease (`OwnershipLease`, docs/chat_ordering.md § Leases),
/// which lets the chats' sequencer acknowledge a batch without the fence read.
final class ServerDirectory: OrderingLease, Sendable {
    let serverId: String
    let store: ChatCatalog
    let ttlSeconds: Int32
    let heartbeatInterval: Duration
    let refreshInterval: Duration
    let timings: LeaseTimings
    /// Monotonic nanoseconds (injected for tests).
    let now: @Sendable () -> Int64
    private let lease: Mutex<OwnershipLease>
    /// Signalled after every heartbeat, refresh and revoke: what `permitToOpen` waits for.
    private let leaseChanges = LeaseChanges()
    private let liveness: Mutex<PeerLiveness>
    private let address = Mutex<String>("")
    private let peerListener = Mutex<String>("")
    /// The live set hashed, and its version: bumped by every change (`LeaseStamp`), and when
    /// (`now`) this server installed that version.
    private let hashing = Mutex<(hashing: ServerHashing, version: UInt64, since: Int64)>(
        (ServerHashing(servers: [:]), 0, 0))
    /// Server id → its peer-link address, from the same read as `hashing`.
    private let peerAddresses = Mutex<[String: String]>([:])
    /// When this server's heartbeat last reached the ring.
    private let lastBeat = Mutex<Int64?>(nil)
    /// Whether a read of `chat.servers` has succeeded since this server's first heartbeat: only
    /// then does its live set include every peer that was live when it joined (`/ready`).
    private let refreshedSinceBeat = Mutex(false)
    private let logger: Logger

    init(
        serverId: String, store: ChatCatalog, ttlSeconds: Int32 = 10, heartbeatInterval: Duration = .seconds(3),
        refreshInterval: Duration = .seconds(2), logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Int64(DispatchTime.now().uptimeNanoseconds) }
    ) {
        self.serverId = serverId
        self.store = store
        self.ttlSeconds = ttlSeconds
        self.heartbeatInterval = heartbeatInterval
        self.refreshInterval = refreshInterval
        self.logger = logger
        self.now = now
        let timings = LeaseTimings(silenceNanos: Int64(ttlSeconds) * 1_000_000_000)
        self.timings = timings
        self.lease = Mutex(OwnershipLease(timings: timings))
        self.liveness = Mutex(PeerLiveness(timings: timings))
    }

    /// How long a heartbeat row outlives its last write. Liveness is decided by the heartbeat
    /// value changing, not by expiry (expiry follows the replicas' wall clocks); the TTL only
    /// clears the rows of servers that are gone for good, so it is far longer than the silence.
    var rowTTLSeconds: Int32 { max(3_600, ttlSeconds &* 10) }

    /// This server's public address ("http://host:port"), known once it listens.
    func setAddress(_ a: String) {
        address.withLock { $0 = a }
        var s = servers
        s[serverId] = a
        setServers(s)
    }

    /// Installs a new live set; a changed one bumps the view version (`LeaseStamp`).
    private func setServers(_ live: [String: String]) {
        let t = now()
        let changed = hashing.withLock { h -> Bool in
            guard h.version == 0 || h.hashing.servers != live else { return false }
            h = (ServerHashing(servers: live), h.version &+ 1, t)
            return true
        }
        if changed { ChatMetrics.shared.liveSetChanges.increment() }
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
    var servers: [String: String] { hashing.withLock { $0.hashing.servers } }

    /// The server `userId` belongs to: (id, address).
    func owner(of userId: String) -> (id: String, address: String) {
        let r = hashing.withLock { $0.hashing }
        guard let id = r.owner(of: userId), let a = r.servers[id] else { return (serverId, ownAddress) }
        return (id, a)
    }

    /// The server that orders `chatId`'s sends (docs/chat_ordering.md): the same hash ring as
    /// users, keyed "#<chatId>" (user ids never start with "#").
    func owner(ofChat chatId: Int64) -> (id: String, address: String) {
        owner(of: "#\(chatId)")
    }

    func heartbeat() async throws {
        let started = now()
        try await store.putServer(
            id: serverId, address: ownAddress, peerAddress: peerListener.withLock { $0 },
            beat: Int64.random(in: Int64.min...Int64.max), ttlSeconds: rowTTLSeconds)
        let finished = now()
        lastBeat.withLock { $0 = started }
        lease.withLock { $0.beatSucceeded(startedAt: started, finishedAt: finished) }
        leaseChanges.signal()
    }

    /// Whether the others still count this server live: its heartbeat value changed less than the
    /// silence ago (with the margin for their clocks and refreshes). A server whose heartbeats
    /// fail must not keep acting as the owner of users and chats the others have already moved
    /// elsewhere.
    var isLive: Bool {
        guard let last = lastBeat.withLock({ $0 }) else { return false }
        return now() - last < timings.silenceNanos - timings.marginNanos
    }

    /// Heartbeating, and the live set read at least once after the first heartbeat.
    var hasSeenPeers: Bool { isLive && refreshedSinceBeat.withLock { $0 } }

    func refresh() async throws {
        let beatBefore = lastBeat.withLock { $0 } != nil
        defer { if beatBefore { refreshedSinceBeat.withLock { $0 = true } } }
        let started = now()
        let rows = try await store.servers()
        let finished = now()
        let others = rows.filter { $0.key != serverId }
        let liveIds = liveness.withLock {
            $0.observe(others.mapValues(\.beat), startedAt: started, finishedAt: finished)
        }
        lease.withLock { $0.refreshSucceeded(startedAt: started, finishedAt: finished, othersPresent: !others.isEmpty) }
        leaseChanges.signal()
        let live = PeerLiveness.view(
            others: others.filter { liveIds.contains($0.key) }.mapValues(\.public), selfId: serverId,
            selfAddress: ownAddress, selfLive: isLive)
        // Only the live ones: rows of dead servers linger (long TTL), and `PeerLinks.retain` stops
        // the links to servers missing here.
        var peers = others.filter { liveIds.contains($0.key) }.mapValues(\.peer)
        peers[serverId] = peerListener.withLock { $0 }
        peerAddresses.withLock { $0 = peers }
        setServers(live)
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
                        var s = servers
                        s[serverId] = nil
                        if !s.isEmpty { setServers(s) }
                    }
                }
                nextRefresh = now + refreshInterval
                ChatMetrics.shared.liveSetSettled.record(liveSetView.settled ? 1 : 0)
            }
            try? await Task.sleep(until: min(nextBeat, nextRefresh), clock: clock)
        }
    }

    /// Removes this server's row (graceful shutdown). The lease is given up first: once the
    /// others drop this server, nothing it still acknowledges may have skipped the fence.
    func deregister() async {
        lease.withLock { $0.revoke() }
        leaseChanges.signal()
        try? await store.removeServer(id: serverId)
    }

    // MARK: OrderingLease

    /// Whether this server owns `chatId` in its view, and that view's version.
    private func ownership(of chatId: Int64) -> (owns: Bool, version: UInt64) {
        let (h, version) = hashing.withLock { ($0.hashing, $0.version) }
        return ((h.owner(of: "#\(chatId)") ?? serverId) == serverId, version)
    }

    func permitToOpen(chatId: Int64) async throws -> LeaseStamp {
        let deadline = now() + timings.gateNanos + timings.silenceNanos
        while true {
            let seen = leaseChanges.generation
            let t = now()
            let (owns, version) = ownership(of: chatId)
            let (stamp, allowedAt) = lease.withLock { l in
                (l.stamp(viewVersion: version, owns: true, now: t), l.openingAllowedAt(now: t))
            }
            if let stamp {
                guard owns else {
                    throw ChatError(
                        .storageUnavailable,
                        "chat \(chatId) is moving to another chat server (the servers' views differ for a moment); retry"
                    )
                }
                return stamp
            }
            guard t < deadline else {
                throw ChatError(
                    .storageUnavailable,
                    """
                    this chat server cannot order chat \(chatId) yet: its ownership lease is not held \
                    (heartbeat or directory reads do not reach the ring in time); retry
                    """)
            }
            // Wake when the gate opens (a time), or when a heartbeat or refresh lands (the lease
            // may be held then) — never later than the deadline.
            if let allowedAt {
                try await Task.sleep(for: .nanoseconds(max(1_000_000, min(deadline, allowedAt) - t)))
            } else {
                await leaseChanges.wait(past: seen, timeout: .nanoseconds(max(1_000_000, deadline - t)))
                try Task.checkCancellation()
            }
        }
    }

    func mayContinueOpening(chatId: Int64, stamp: LeaseStamp) -> Bool {
        let t = now()
        let (owns, version) = ownership(of: chatId)
        return lease.withLock { $0.mayContinueOpening(stamp, viewVersion: version, owns: owns, now: t) }
    }

    func mayAcknowledge(chatId: Int64, stamp: LeaseStamp) -> Bool {
        let t = now()
        let (owns, version) = ownership(of: chatId)
        return lease.withLock { $0.mayAcknowledge(stamp, viewVersion: version, owns: owns, now: t) }
    }

    func currentStamp(chatId: Int64) -> LeaseStamp? {
        let t = now()
        let (owns, version) = ownership(of: chatId)
        return lease.withLock { $0.stamp(viewVersion: version, owns: owns, now: t) }
    }

    /// How long after a change of the live set other servers' views may still differ from this
    /// one's: the silence that drops a server plus two refreshes (one on each side).
    var settleNanos: Int64 {
        let refresh = refreshInterval.components
        return timings.silenceNanos + 2 * (refresh.seconds * 1_000_000_000 + refresh.attoseconds / 1_000_000_000)
    }

    var liveSetView: LiveSetView {
        let t = now()
        let (version, since) = hashing.withLock { ($0.version, $0.since) }
        return LiveSetView(version: version, settled: t - since >= settleNanos)
    }
}

/// This server's view of the live chat servers: its version (bumped by every change), and whether
/// it has held long enough that every other server's view agrees with it (`ChatSequencer`'s
/// members; docs/chat_ordering.md, "Members").
struct LiveSetView: Sendable, Equatable {
    var version: UInt64
    var settled: Bool
}

/// Lets the owner of a chat acknowledge a batch without reading the header back (the fence):
/// while the lease holds and the view is unchanged, no other server can have opened the chat
/// (docs/chat_ordering.md § Leases).
protocol OrderingLease: Sendable {
    /// Waits until this server may open `chatId` (its lease held and past its gate, and it owns the
    /// chat in its view); returns the stamp the chat is opened under.
    func permitToOpen(chatId: Int64) async throws -> LeaseStamp
    /// Checked after the new header is written and before the end read: still allowed.
    func mayContinueOpening(chatId: Int64, stamp: LeaseStamp) -> Bool
    /// A batch of a chat stamped `stamp`, already on a QUORUM, may be acknowledged without the
    /// fence read.
    func mayAcknowledge(chatId: Int64, stamp: LeaseStamp) -> Bool
    /// The stamp to give a chat whose fence read, started now, succeeds (nil: this server does not
    /// own it, or holds no period).
    func currentStamp(chatId: Int64) -> LeaseStamp?
    /// The live set's version and whether the views have settled since it changed: an owner's
    /// cached members are current until the next change, and are read again once views settle.
    var liveSetView: LiveSetView { get }
}
