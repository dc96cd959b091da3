import ConfabEngine
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One chat server: the HTTP API, the WebSocket endpoint, long polling and the web client, over
/// the chat services. It keeps no data of its own — accounts, chats and messages are in the ring
/// (through `storage`); it holds live connections, presence and typing, which are never stored.
///
/// Run it as a `Service` (in a `ServiceGroup`); graceful shutdown stops accepting connections,
/// closes WebSockets with 1000 (`going_away`), ends long polls at once and deletes this
/// server's heartbeat row so the others stop routing users here.
public final class ChatServer: Service, Sendable {
    public let configuration: ChatServerConfiguration
    let storage: any RingStorage
    let logger: Logger
    let clock: any ChatClock
    let store: ChatCatalog
    let hub: ConnectionHub
    let accounts: AccountService
    let credentials: CredentialGuard
    let chats: ChatService
    let polls: PollSessions
    /// WebSockets open now, accepted or being refused (`ChatServerConfiguration.maxRefusing`).
    let openSockets = Atomic<Int>(0)
    let directory: ServerDirectory
    let delivery: any Delivery
    let peers: PeerLinks
    let peerHandshake: PeerHandshake
    private let port = PortLatch()
    private let peerPort = PortLatch()
    let shutdown = ShutdownSignal()

    public init(
        configuration: ChatServerConfiguration, storage: any RingStorage, logger: Logger = Logger(label: "confab.chat")
    ) {
        self.configuration = configuration
        self.storage = storage
        self.logger = logger
        self.clock = configuration.clock
        let store = ChatCatalog(storage: storage, clock: clock)
        self.store = store
        self.hub = ConnectionHub(clock: clock)
        let directory = ServerDirectory(
            serverId: configuration.serverId, store: store, ttlSeconds: configuration.heartbeatTTLSeconds,
            heartbeatInterval: configuration.heartbeatInterval,
            refreshInterval: configuration.serverRefreshInterval, logger: logger)
        self.directory = directory
        self.peerHandshake = PeerHandshake(secret: configuration.secret)
        self.peers = PeerLinks(
            serverId: configuration.serverId, directory: directory, handshake: peerHandshake, clock: clock,
            maxFrames: configuration.peerQueueMaxFrames,
            maxBytes: configuration.peerQueueMaxBytes, batches: configuration.peerLinkBatches, logger: logger)
        self.delivery = ForwardingDelivery(hub: hub, directory: directory, peers: peers)
        self.accounts = AccountService(
            store: store, hasher: PasswordHasher(rounds: configuration.passwordRounds),
            signer: TokenSigner(
                secret: configuration.secret, clock: clock,
                lifetimeSeconds: configuration.tokenLifetimeSeconds),
            clock: clock)
        self.credentials = CredentialGuard(
            limits: .init(
                perAddressPerSecond: configuration.credentialAttemptsPerSecondPerAddress,
                perAddressBurst: configuration.credentialAttemptBurstPerAddress,
                perHandlePerSecond: configuration.credentialAttemptsPerSecondPerHandle,
                perHandleBurst: configuration.credentialAttemptBurstPerHandle,
                maxHashesInFlight: configuration.maxPasswordHashesInFlight),
            clock: clock)
        self.chats = ChatService(
            store: store, delivery: delivery,
            limiter: RateLimiter(
                ratePerSecond: configuration.sendsPerSecond, burst: configuration.sendBurst, clock: clock),
            clock: clock, serverId: configuration.serverId, router: PeerRouting(directory: directory, peers: peers),
            logger: logger, directChatIds: DirectChatIds(secret: configuration.secret), lease: directory)
        self.polls = PollSessions(hub: hub, clock: clock, idleMicros: configuration.pollIdleSeconds * 1_000_000)
    }

    /// The port the server listens on, once it does (the real one when configured with port 0).
    public func listeningPort() async throws -> Int { try await port.value() }

    /// "http://host:port" of this server, once it listens.
    public var address: String { directory.ownAddress }

    public func run() async throws {
        let router = Router(context: ChatRequestContext.self)
        // A user's home server may be another origin (another port) than the page's: allow it.
        // Tokens travel in the Authorization header, never in cookies, so "*" grants nothing.
        // CORS goes outside the error middleware: an error must already be its JSON answer when
        // CORS adds its headers (the other way round, a request with an Origin header — every
        // browser's — got a bare 500 for every error).
        router.add(
            middleware: CORSMiddleware(
                allowOrigin: .all, allowHeaders: [.accept, .authorization, .contentType, .origin],
                allowMethods: [.get, .post, .delete, .head, .options], maxAge: .seconds(3600)))
        router.add(middleware: ChatErrorMiddleware())
        if let web = configuration.webDirectory ?? WebClientFiles.directory?.path {
            router.add(
                middleware: WebFilesMiddleware(files: FileMiddleware(web, searchForIndexHtml: true, logger: logger)))
        }
        addRoutes(to: router)
        addOperationsRoutes(to: router)
        // Peer links have a listener of their own, loopback by default, never the public port
        // (docs/operations.md, "Ports"); it serves nothing else.
        let peerRouter = Router(context: ChatRequestContext.self)
        addInternalWebSocket(to: peerRouter)
        let peerApp = Application(
            router: Router(context: ChatRequestContext.self),
            server: .http1WebSocketUpgrade(
                webSocketRouter: peerRouter,
                configuration: .init(
                    ws: WebSocketServerConfiguration(
                        maxFrameSize: 8 << 20, autoPing: .enabled(timePeriod: .seconds(30)))
                )),
            configuration: .init(
                address: .hostname(configuration.peerHost, port: configuration.peerPort),
                serverName: "confab-chat-peer"),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress?.port ?? configuration.peerPort
                directory.setPeerAddress("http://\(configuration.shownPeerHost):\(bound)")
                peerPort.set(bound)
            },
            logger: logger)
        let app = Application(
            router: router,
            server: publicServer(),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "confab-chat"),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress?.port ?? configuration.port
                directory.setAddress("http://\(configuration.shownHost):\(bound)")
                port.set(bound)
            },
            logger: logger)
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await app.run() }
                    group.addTask { try await peerApp.run() }
                    group.addTask { [self] in
                        _ = try await listeningPort()
                        _ = try await peerPort.value()
                        await directory.run()
                    }
                    group.addTask { [self] in
                        _ = try await listeningPort()
                        await watchOwnership()
                    }
                    group.addTask { [self] in
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(1))
                            for user in polls.expire() { await announcePresence(of: user) }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            } onGracefulShutdown: { [self] in
                shutdown.trigger()
                closeDeviceSockets()
            }
        } catch {
            failListeners(error)
            closeDeviceSockets()
            peers.stop()
            throw error
        }
        failListeners(CancellationError())
        closeDeviceSockets()
        peers.stop()
        await directory.deregister()
    }

    private func failListeners(_ error: any Error) {
        port.fail(error)
        peerPort.fail(error)
    }

    /// The port of the peer-link listener, once it listens.
    public func peerListeningPort() async throws -> Int { try await peerPort.value() }

    /// Tells everyone who shares a chat with `userId` whether they are online now.
    func announcePresence(of userId: String) async {
        let info = hub.presence(of: userId)
        guard let audience = try? await chats.contacts(of: userId), !audience.isEmpty else { return }
        await delivery.deliver(.presence(info), to: audience, excludingDevice: nil)
    }
}

/// Set once graceful shutdown starts; long polls waiting on it return at once.
final class ShutdownSignal: Sendable {
    private let state = Mutex<(Bool, [UInt64: CheckedContinuation<Void, Never>], UInt64)>((false, [:], 0))

    var isTriggered: Bool { state.withLock { $0.0 } }

    func trigger() {
        let waiters = state.withLock { s in
            s.0 = true
            defer { s.1 = [:] }
            return Array(s.1.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns when shutdown starts or the task is cancelled.
    func wait() async {
        let id = state.withLock { s in
            s.2 += 1
            return s.2
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s in
                    if s.0 || Task.isCancelled { return true }
                    s.1[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let w = state.withLock { $0.1.removeValue(forKey: id) }
            w?.resume()
        }
    }
}
