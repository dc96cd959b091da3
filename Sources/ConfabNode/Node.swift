import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// One Confab node as a swift-service-lifecycle `Service`: opens the engine and the hint store,
/// listens, joins the ring (gossip, tokens), coordinates client requests across replicas, serves
/// peers' replica requests, and on graceful shutdown (SIGTERM/SIGINT through a `ServiceGroup`)
/// stops accepting, finishes the requests already running, answers them, stops gossiping and
/// closes the engines (acknowledged writes are already in the WAL per the sync mode).
///
/// Layout of the data directory: `engine/` (the storage engine's files), `hints/` (the hint
/// store, a second engine), `node-id`, `tokens`, `ring-view`, `gossip-generation` (docs/node.md).
public final class Node: Service, Sendable {
    public let configuration: NodeConfiguration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let processorFactory: (@Sendable (StorageEngine, NIOThreadPool) -> any RequestProcessor)?
    /// Where the hint store's files go; tests pass one that can hold its syncs back.
    private let hintFileSystem: any FileSystem
    private let listening = ListeningAddress()
    private let runtime = Mutex<ClusterService?>(nil)
    private let decommissioned = AsyncStream.makeStream(of: Void.self)

    /// - Parameter processorFactory: replaces the ring's `ReplicatedRequestProcessor` for client
    ///   requests; the ring still runs for gossip and the replica side.
    public convenience init(
        configuration: NodeConfiguration, logger: Logger = Logger(label: "confab.node"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        processorFactory: (@Sendable (StorageEngine, NIOThreadPool) -> any RequestProcessor)? = nil
    ) {
        self.init(
            configuration: configuration, logger: logger, eventLoopGroup: eventLoopGroup,
            processorFactory: processorFactory, hintFileSystem: PosixFileSystem())
    }

    init(
        configuration: NodeConfiguration, logger: Logger = Logger(label: "confab.node"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        processorFactory: (@Sendable (StorageEngine, NIOThreadPool) -> any RequestProcessor)? = nil,
        hintFileSystem: any FileSystem
    ) {
        self.configuration = configuration
        self.logger = logger
        self.group = eventLoopGroup
        self.processorFactory = processorFactory
        self.hintFileSystem = hintFileSystem
    }

    /// Where the node listens, once it does (port 0 in the configuration resolved). Throws
    /// `notRunning` if the node fails or stops before listening.
    public func listeningAddress() async throws -> SocketAddress {
        try await listening.wait()
    }

    /// The node's id; available once it is listening.
    public var nodeID: String? { listening.nodeID }

    /// Hints this node holds (for `nodeID`, or all), 0 before the ring runtime exists.
    public func pendingHints(for nodeID: String? = nil) async -> Int {
        guard let ring = runtime.withLock({ $0 }) else { return 0 }
        return await ring.pendingHints(for: nodeID)
    }

    /// Whether the node can serve now (`/ready`); not ready before the ring runtime exists.
    public func readiness() async -> NodeReadiness {
        guard let ring = runtime.withLock({ $0 }) else {
            return NodeReadiness(reasons: ["the node is starting (engine and ring not open yet)"])
        }
        return await ring.readiness()
    }

    /// The hints in this node's hint store on disk, which may lag the queue (tests).
    func persistedHints() async throws -> [Hint] {
        guard let ring = runtime.withLock({ $0 }) else { return [] }
        return try await ring.hints.recover(now: .zero)
    }

    /// Returns true once this node completed a decommission (it handed its ranges off and
    /// gossiped LEFT) and answered the request that asked for it; the caller should then shut it down, as `confab node` does. Returns false
    /// if the node stops first. One caller at a time.
    public func waitUntilDecommissioned() async -> Bool {
        for await _ in decommissioned.stream { return true }
        return false
    }

    public func run() async throws {
        do {
            try await runNode()
        } catch {
            listening.fail(error)
            decommissioned.continuation.finish()
            throw error
        }
        listening.fail(NodeError(.notRunning, "the node has stopped"))
        decommissioned.continuation.finish()
    }

    private func runNode() async throws {
        let config = configuration
        try config.validate()
        // TLS files are checked before anything opens: a bad one stops the node with its reason.
        var tls: (server: NIOSSLContext, client: NIOSSLContext)?
        if let settings = config.tls {
            do throws(NodeTLSError) {
                tls = (try settings.serverContext(), try settings.clientContext())
            } catch {
                throw NodeError(.invalidConfiguration, "TLS: \(error)")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: config.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw NodeError(.dataDirectory, "cannot create \(config.dataDirectory): \(error.localizedDescription)")
        }
        if NodeStateFiles.isDecommissioned(dataDirectory: config.dataDirectory) {
            throw NodeError(
                .dataDirectory,
                """
                the node in \(config.dataDirectory) was decommissioned (it left the ring and handed its data off); \
                it does not rejoin with stale data. Remove \(config.dataDirectory) to start a new node there
                """)
        }
        let nodeID = try NodeIdentity.loadOrCreate(dataDirectory: config.dataDirectory)
        var options = EngineOptions()
        options.syncMode = config.syncMode
        options.groupCommit = config.groupCommit
        options.memtableBytes = config.memtableBytes
        options.cacheFlushedTables = config.cacheFlushedTables
        let engineOptions = options

        let threadPool = NIOThreadPool(numberOfThreads: config.ioThreads)
        threadPool.start()
        let engine: StorageEngine
        let hints: HintStore
        let tokens: [Token]?
        let generation: Int64
        var savedView: PeerViewFile?
        do {
            engine = try await threadPool.runIfActive {
                try StorageEngine.open(directory: config.engineDirectory, options: engineOptions)
            }
            do {
                hints = try await HintStore.open(
                    directory: config.hintsDirectory, threadPool: threadPool,
                    fileSystem: hintFileSystem)
                (tokens, generation) = try await threadPool.runIfActive {
                    (
                        try NodeStateFiles.loadTokens(dataDirectory: config.dataDirectory),
                        try NodeStateFiles.nextGeneration(
                            dataDirectory: config.dataDirectory,
                            nowSeconds: SystemClock().nowSeconds())
                    )
                }
                do {
                    savedView = try await threadPool.runIfActive {
                        try PeerViewFile.load(dataDirectory: config.dataDirectory)
                    }
                } catch {
                    // Safe to go on without it: the node then waits for a peer before serving.
                    logger.error("cannot read the saved ring view", metadata: ["error": "\(error)"])
                }
            } catch {
                try? await threadPool.runIfActive { try engine.close() }
                throw error
            }
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
        let replica = LocalReplica(engine: engine, threadPool: threadPool)
        let messenger = InternodeMessenger(
            localID: nodeID, group: group, maxFrameBytes: config.maxFrameBytes, tls: tls?.client,
            credentials: config.clusterSecret.map { ClusterCredentials(secret: $0, role: .node, nodeID: nodeID) },
            logger: logger)
        let ring = ClusterService(
            configuration: config, localID: nodeID, replica: replica, hints: hints,
            recoveredHints: (try? await hints.recoverRefs(now: RingInstant.zero)) ?? [],
            tokens: tokens, savedView: savedView, generation: generation, messenger: messenger, logger: logger,
            onDecommissioned: { [decommissioned] in decommissioned.continuation.yield() })
        runtime.withLock { $0 = ring }
        let processor =
            processorFactory?(engine, threadPool)
            ?? ReplicatedRequestProcessor(
                ring: ring, replica: replica, messenger: messenger, schema: config.schema,
                writeTimeout: config.writeTimeout, readTimeout: config.readTimeout, timers: group)
        let handler = RequestHandler(
            processor: processor, replica: replica, ring: ring, schema: config.schema, nodeID: nodeID,
            clusterName: config.clusterName, maxFrameBytes: config.maxFrameBytes, metrics: NodeMetrics(),
            logger: logger)
        let server = NodeServer(
            listen: (config.listen.host, config.listen.port), maxInFlightPerConnection: config.maxInFlightPerConnection,
            maxFrameBytes: config.maxFrameBytes, handler: handler, clusterSecret: config.clusterSecret,
            tls: tls?.server,
            group: group, logger: logger)

        var serveError: (any Error)?
        let (bound, boundSink) = AsyncStream.makeStream(of: SocketAddress.self)
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                // The ring starts once the port is known: gossip advertises it.
                for await address in bound {
                    let host = address.ipAddress ?? config.listen.host
                    await ring.run(localAddress: NodeAddress(host: host, port: address.port ?? config.listen.port)) {
                        // Reported only now: a lone node is NORMAL by then and serves at once.
                        // Logged first, so whoever waits for `listening` finds the line in the log.
                        self.logger.info(
                            "listening",
                            metadata: [
                                "address": "\(address)", "node_id": "\(nodeID)", "sync": "\(config.syncMode)",
                                // The group commit settings, in the config file's keys: they set the
                                // write latency and the fdatasyncs per write, so an operator (or a
                                // benchmark comparing them) can see which ones a node runs with.
                                "wal_group_quiet_us": "\(config.groupCommit.quietMicros)",
                                "wal_group_window_us": "\(config.groupCommit.windowMicros)",
                                "wal_group_max_writes": "\(config.groupCommit.maxWrites)",
                            ])
                        self.listening.succeed(address, nodeID: nodeID)
                    }
                    return
                }
            }
            do {
                try await server.run { address in boundSink.yield(address) }
            } catch {
                serveError = error
            }
            boundSink.finish()
            tasks.cancelAll()
        }
        await messenger.shutdown()
        logger.info("closing the engines")
        do {
            try await hints.close()
            try await threadPool.runIfActive { try engine.close() }
        } catch {
            logger.error("closing the engines failed", metadata: ["error": "\(error)"])
            if serveError == nil { serveError = error }
        }
        try? await threadPool.shutdownGracefully()
        if let serveError { throw serveError }
    }
}

/// The bound address, awaited by tests and the CLI; settles once.
private final class ListeningAddress: Sendable {
    private enum State {
        case waiting([CheckedContinuation<SocketAddress, any Error>])
        case listening(SocketAddress, nodeID: String)
        case failed(any Error)
    }
    private let state = Mutex(State.waiting([]))

    var nodeID: String? {
        state.withLock { if case .listening(_, let id) = $0 { return id } else { return nil } }
    }

    func succeed(_ address: SocketAddress, nodeID: String) {
        let waiters = state.withLock { s -> [CheckedContinuation<SocketAddress, any Error>] in
            guard case .waiting(let w) = s else { return [] }
            s = .listening(address, nodeID: nodeID)
            return w
        }
        for w in waiters { w.resume(returning: address) }
    }

    func fail(_ error: any Error) {
        let waiters = state.withLock { s -> [CheckedContinuation<SocketAddress, any Error>] in
            guard case .waiting(let w) = s else { return [] }
            s = .failed(error)
            return w
        }
        for w in waiters { w.resume(throwing: error) }
    }

    func wait() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { c in
            let result: Result<SocketAddress, any Error>? = state.withLock { s in
                switch s {
                case .waiting(var w):
                    w.append(c)
                    s = .waiting(w)
                    return nil
                case .listening(let a, _): return .success(a)
                case .failed(let e): return .failure(e)
                }
            }
            if let result { c.resume(with: result) }
        }
    }
}

extension Node {
    /// Runs the node in a `ServiceGroup` that turns SIGTERM and SIGINT into a graceful shutdown;
    /// returns once the node has stopped and closed its engine (what `confab node` does).
    public func runUntilTerminated() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
