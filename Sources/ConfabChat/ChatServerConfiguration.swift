import ConfabEngine
import Foundation

/// Settings of one chat server process (`confab chat serve` flags map onto these).
public struct ChatServerConfiguration: Sendable {
    /// Address to listen on; port 0 picks a free port (see `ChatServer.listeningPort()`).
    public var host = "127.0.0.1"
    public var port = 8080
    /// Host put in this server's advertised address ("http://host:port") for `/api/route` and
    /// the other servers; default `host` (127.0.0.1 when listening on 0.0.0.0 or ::).
    public var advertisedHost: String?
    /// Address of the peer-link listener (`/internal/ws`, the other chat servers only): loopback
    /// by default, so a deployment on several hosts sets it to an address the others reach and
    /// firewalls it from users. Port 0 picks a free port; the address is published in the
    /// server's heartbeat row.
    public var peerHost = "127.0.0.1"
    public var peerPort = 0
    /// Host put in the published peer-link address; default `peerHost` (as `advertisedHost`).
    public var advertisedPeerHost: String?
    /// Unique per running server; the key of its heartbeat row.
    public var serverId: String
    /// Signs tokens. Every chat server of a deployment must share it.
    public var secret: [UInt8]
    public var passwordRounds = PasswordHasher.defaultRounds
    public var tokenLifetimeSeconds: Int64 = 24 * 3600
    /// Per-user send rate: refill per second and bucket size.
    public var sendsPerSecond: Double = 20
    public var sendBurst: Double = 50
    /// Login and sign-up attempts (each a PBKDF2 hash): per client address and per handle
    /// (refill per second and bucket size), and hashes running or queued at once; more answer
    /// `rate_limited` with Retry-After (docs/chat_protocol.md, "Limits").
    public var credentialAttemptsPerSecondPerAddress: Double = 1
    public var credentialAttemptBurstPerAddress: Double = 30
    public var credentialAttemptsPerSecondPerHandle: Double = 0.1
    public var credentialAttemptBurstPerHandle: Double = 10
    public var maxPasswordHashesInFlight = 8
    /// Largest WebSocket message accepted (larger: close 1009). A valid message is at most
    /// 100,000 Unicode scalars; written as JSON with every scalar escaped as a surrogate pair
    /// (`\ud83d\ude00`, 12 bytes) its frame is 1.2 MB plus the other fields, so 2 MiB takes every
    /// valid message in any JSON encoding (docs/chat_protocol.md, "Limits").
    public var maxFrameBytes = 2 << 20
    /// A WebSocket device whose unsent events exceed either bound is closed with 4008.
    /// Live WebSocket devices this server accepts before refusing with `server_full` (close
    /// 1013). Running out of descriptors takes the whole process down (the runtime and the ring
    /// client need them too), so the cap stays below the descriptor limit; `confab chat serve`
    /// sets it from the limit in effect.
    public var maxConnections = 10_000
    /// WebSockets being refused at once beyond `maxConnections` (a refusal sends its reason and
    /// waits up to 2 s for the client's close, holding a descriptor). Past `maxConnections +
    /// maxRefusing` open sockets, a new upgrade is closed at once (1013), whatever its token: a
    /// flood of refused upgrades cannot hold more descriptors than that (issue 12).
    public var maxRefusing = 256
    public var outboxMaxEvents = 1000
    public var outboxMaxBytes = 4 << 20
    /// The server pings each WebSocket this often and closes one that answered none of its
    /// previous ping: a device gone without a FIN leaves within two intervals.
    public var pingIntervalSeconds: Int64 = 30
    /// A long-polling device that has not polled for this long is offline.
    public var pollIdleSeconds: Int64 = 30
    /// Longest wait of one long poll.
    public var maxPollSeconds = 55
    /// Heartbeat row TTL and intervals (docs/chat_data.md, chat.servers).
    public var heartbeatTTLSeconds: Int32 = 10
    public var heartbeatInterval: Duration = .seconds(3)
    public var serverRefreshInterval: Duration = .seconds(2)
    /// Frames queued for one other chat server while it is slow or unreachable; more are dropped
    /// (live copies only: recipients catch up with `sync`).
    public var peerQueueMaxFrames = 10_000
    /// The same queue's bound in bytes: a frame may carry a 2 MiB message, so 10,000 of them
    /// would be 20 GB; 32 MiB holds ~50,000 typical events, or 16 of the largest messages.
    public var peerQueueMaxBytes = 32 << 20
    /// Frames waiting for a peer server go as one `batch` frame when the peer reads batches
    /// (`PeerBatch`); false makes this server act as one from before batches (mixed-version tests).
    public var peerLinkBatches = true
    /// Files served at `/` (the web client); default the bundled `Web/` directory.
    public var webDirectory: String?
    /// Renders the process's metrics registry for `/metrics` (the executable bootstraps a
    /// Prometheus backend and passes it); nil serves an empty exposition (no backend).
    public var metricsExposition: (@Sendable () -> [UInt8])?
    public var clock: any ChatClock = SystemClock()

    /// Largest HTTP body of a send (`POST /api/chats/{id}/messages`): as `maxFrameBytes`.
    public static let maxMessageBodyBytes = 2 << 20

    public init(serverId: String = "chat-" + String(UInt32.random(in: 0...UInt32.max), radix: 36), secret: [UInt8]) {
        self.serverId = serverId
        self.secret = secret
    }

    var shownPeerHost: String {
        let h = advertisedPeerHost ?? ((peerHost == "0.0.0.0" || peerHost == "::") ? shownHostName : peerHost)
        return h.contains(":") ? "[\(h)]" : h
    }

    private var shownHostName: String {
        advertisedHost ?? ((host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host)
    }

    var shownHost: String {
        let h = advertisedHost ?? ((host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host)
        return h.contains(":") ? "[\(h)]" : h
    }
}
