import ConfabEngine
import ConfabWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// One Confab node as a swift-service-lifecycle `Service`: opens the engine, listens, serves, and on
/// graceful shutdown (SIGTERM/SIGINT through a `ServiceGroup`) stops accepting, finishes the
/// requests already running, answers them, and closes the engine (flushing nothing it has not
/// already made durable: acknowledged writes are in the WAL per the sync mode).
///
/// Layout of the data directory: `engine/` (the storage engine's files), `node-id`.
public final class Node: Service, Sendable {
    public let configuration: NodeConfiguration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let processorFactory: @Sendable (StorageEngine, NIOThreadPool) -> any RequestProcessor
    private let listening = ListeningAddress()

    /// - Parameter processorFactory: what serves requests (the ring's coordinator plugs in here);
    ///   `LocalProcessor` by default.
    public init(configuration: NodeConfiguration, logger: Logger = Logger(label: "confab.node"),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                processorFactory: @escaping @Sendable (StorageEngine, NIOThreadPool) -> any RequestProcessor = {
                    LocalProcessor(engine: $0, threadPool: $1)
                }) {
        self.configuration = configuration
        self.logger = logger
        self.group = eventLoopGroup
        self.processorFactory = processorFactory
    }

    /// Where the node listens, once it does (port 0 in the configuration resolved). Throws
    /// `notRunning` if the node fails or stops before listening.
    public func listeningAddress() async throws -> SocketAddress {
        try await listening.wait()
    }

    /// The node's id; available once it is listening.
    public var nodeID: String? { listening.nodeID }

    public func run() async throws {
        do {
            try await runNode()
        } catch {
            listening.fail(error)
            throw error
        }
        listening.fail(NodeError(.notRunning, "the node has stopped"))
    }

    private func runNode() async throws {
        let config = configuration
        try config.validate()
        do {
            try FileManager.default.createDirectory(atPath: config.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw NodeError(.dataDirectory, "cannot create \(config.dataDirectory): \(error.localizedDescription)")
        }
        let nodeID = try NodeIdentity.loadOrCreate(dataDirectory: config.dataDirectory)
        var options = EngineOptions()
        options.syncMode = config.syncMode
        options.memtableBytes = config.memtableBytes
        let engineOptions = options

        let threadPool = NIOThreadPool(numberOfThreads: config.ioThreads)
        threadPool.start()
        let engine: StorageEngine
        do {
            engine = try await threadPool.runIfActive { try StorageEngine.open(directory: config.engineDirectory, options: engineOptions) }
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
        if config.replicationFactor > 1 {
            logger.warning("replication_factor \(config.replicationFactor) is configured but this node serves alone (RF 1) until the ring is integrated")
        }
        let handler = RequestHandler(
            processor: processorFactory(engine, threadPool), schema: .standard, nodeID: nodeID,
            clusterName: config.clusterName, maxFrameBytes: config.maxFrameBytes, metrics: NodeMetrics(),
            logger: logger)
        let server = NodeServer(
            listen: (config.listen.host, config.listen.port), maxInFlightPerConnection: config.maxInFlightPerConnection,
            maxFrameBytes: config.maxFrameBytes, handler: handler, group: group, logger: logger)

        var serveError: (any Error)?
        do {
            try await server.run { address in
                self.listening.succeed(address, nodeID: nodeID)
                self.logger.info("listening", metadata: ["address": "\(address)", "node_id": "\(nodeID)"])
            }
        } catch {
            serveError = error
        }
        logger.info("closing the engine")
        do {
            try await threadPool.runIfActive { try engine.close() }
        } catch {
            logger.error("closing the engine failed", metadata: ["error": "\(error)"])
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
    private let state = NIOLockedValueBox(State.waiting([]))

    var nodeID: String? {
        state.withLockedValue { if case .listening(_, let id) = $0 { return id } else { return nil } }
    }

    func succeed(_ address: SocketAddress, nodeID: String) {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<SocketAddress, any Error>] in
            guard case .waiting(let w) = s else { return [] }
            s = .listening(address, nodeID: nodeID)
            return w
        }
        for w in waiters { w.resume(returning: address) }
    }

    func fail(_ error: any Error) {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<SocketAddress, any Error>] in
            guard case .waiting(let w) = s else { return [] }
            s = .failed(error)
            return w
        }
        for w in waiters { w.resume(throwing: error) }
    }

    func wait() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { c in
            let result: Result<SocketAddress, any Error>? = state.withLockedValue { s in
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
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
