import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// A client of a Confab cluster: connects to the nodes it is given, keeps one connection per node
/// and multiplexes concurrent requests over it, and retries a request on the next node when a node
/// cannot be reached or fails in a way another node may not.
///
/// Guarantees, per request:
/// - `write` returns once the write is durable on as many replicas as `consistency` requires. A
///   write that throws may or may not have been applied (e.g. the connection closed after the node
///   received it). Writes carry their own timestamps, so retrying one (as this client does on
///   another node) is idempotent: at-least-once delivery, exactly-once effect.
/// - `read` returns rows in query order; at QUORUM (or when reads and writes overlap) it sees every
///   write acknowledged before it started.
///
/// Thread-safe; share one client per process.
public final class ConfabClient: Sendable {
    public struct Configuration: Sendable {
        /// Nodes to send requests to (any node coordinates any request).
        public var nodes: [NodeAddress]
        public var connectTimeout: Duration = .seconds(2)
        /// How long to wait for one node's answer before trying the next.
        public var requestTimeout: Duration = .seconds(10)
        /// Nodes tried per request at most (default: every node once).
        public var maxAttempts: Int?
        public var maxFrameBytes: Int = FrameHeader.defaultMaxBodyBytes
        /// Connections kept open to each node; requests take them in turn. A node serves each
        /// connection's requests on that connection's event loop, so one connection would use
        /// one of its cores for this client (as shard-aware Cassandra drivers open one per shard).
        public var connectionsPerNode = 2
        /// Sent in Hello, shows up in node logs.
        public var clientName = "confab-swift-client"
        /// Which node to try first: by default a replica of the request's partition, once the
        /// client has learned the ring (`TokenAwareRouting`).
        public var routing: any RoutingPolicy = TokenAwareRouting()
        /// The tables requests may name (a mutation's or query's table id is sent by name). The
        /// client knows no tables of its own: set the registry of the tables the ring serves.
        public var schema: SchemaRegistry = .empty
        /// Timestamps of posted messages and TTL checks.
        public var clock: any EngineClock = SystemClock()
        /// Set to authenticate each connection (as an operator, for flush, compact, repair and
        /// decommission); reads and writes need none. docs/security.md.
        public var credentials: ClusterCredentials?
        /// TLS to the nodes, which must serve it (`NodeTLS`: only `trustRootsPath` matters here);
        /// nil, the default, is plain TCP.
        public var tls: NodeTLS?

        public init(nodes: [NodeAddress]) { self.nodes = nodes }
    }

    public let configuration: Configuration
    let pool: ConnectionPool
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger

    public init(
        configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "confab.client")
    ) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        let c = configuration
        // Built once; a setting that cannot be used fails every connection with its reason.
        let tls: Result<NIOSSLContext, NodeTLSError>? = c.tls.map { settings in
            Result { () throws(NodeTLSError) in try settings.clientContext() }
        }
        self.pool = ConnectionPool(lanes: c.connectionsPerNode) { address, _ in
            try await NodeConnection.connect(
                to: address, group: eventLoopGroup, connectTimeout: c.connectTimeout,
                requestTimeout: c.requestTimeout, maxFrameBytes: c.maxFrameBytes,
                clientName: c.clientName, credentials: c.credentials, tls: try tls?.get())
        }
    }

    /// A client of `nodes` that names the tables of `schema`.
    public convenience init(nodes: [NodeAddress], schema: SchemaRegistry) {
        var configuration = Configuration(nodes: nodes)
        configuration.schema = schema
        self.init(configuration: configuration)
    }

    /// Closes every connection; requests after this fail with `shutDown`.
    public func shutdown() async {
        await pool.shutdown()
    }

    // MARK: Requests

    /// Writes one partition's mutation. See the type's guarantees.
    @discardableResult
    public func write(_ mutation: Mutation, consistency: ConsistencyLevel = .quorum) async throws -> WriteAck {
        switch try await send(try writeRequest(mutation, consistency), partitionKey: mutation.partitionKey) {
        case .writeAck(let ack): return ack
        case let other: throw unexpected(other, for: .write)
        }
    }

    /// Reads a slice (rows with their cell timestamps, in query order).
    public func read(_ query: SliceQuery, consistency: ConsistencyLevel = .quorum) async throws -> ReplicaRows {
        switch try await send(try readRequest(query, consistency), partitionKey: query.partitionKey) {
        case .readResponse(.rows(let rows)): return rows
        case let other: throw unexpected(other, for: .read)
        }
    }

    /// The ring as the first node that answers sees it (`confab ring status`).
    public func status() async throws -> RingStatus {
        switch try await send(.status, partitionKey: nil) {
        case .statusResponse(let s): return s
        case let other: throw unexpected(other, for: .status)
        }
    }

    /// Learns the ring's tokens for token-aware routing now (otherwise done lazily).
    public func discoverRing() async throws {
        let status = try await status()
        (configuration.routing as? TokenAwareRouting)?.update(from: status)
    }

    /// Round trip to a node (the first the routing policy picks); returns the node's id.
    public func ping() async throws -> String {
        let nonce = UInt64.random(in: 0...UInt64.max)
        var nodeID = ""
        let reply = try await send(.ping(nonce: nonce), partitionKey: nil) { nodeID = $0 }
        guard case .pong(nonce) = reply else { throw unexpected(reply, for: .ping) }
        return nodeID
    }

    /// Sends `message` to the planned nodes in turn until one answers. Node errors that another
    /// node may not repeat (overloaded, server, timeout, unavailable) and connection failures move
    /// on to the next node; the last failure is thrown.
    func send(
        _ message: WireMessage, partitionKey: [UInt8]?,
        answeredBy: (String) -> Void = { _ in }
    ) async throws -> WireMessage {
        if needsTopology(partitionKey), let tokenAware = configuration.routing as? TokenAwareRouting {
            // Learn the ring once (and again when stale); routing works without it, so a failure
            // here only means round robin for now.
            if let status = try? await self.send(.status, partitionKey: nil), case .statusResponse(let s) = status {
                tokenAware.update(from: s)
            } else {
                tokenAware.update(from: RingStatus(clusterName: "", replicationFactor: 1, nodes: []))
            }
        }
        let plan = try attemptPlan(message, partitionKey: partitionKey)
        return try await send(message, to: plan[...], failures: [], answeredBy: answeredBy)
    }

    private func needsTopology(_ partitionKey: [UInt8]?) -> Bool {
        partitionKey != nil && (configuration.routing as? TokenAwareRouting)?.needsTopology == true
    }

    /// The nodes to try, in order, as many as `maxAttempts` allows.
    private func attemptPlan(_ message: WireMessage, partitionKey: [UInt8]?) throws -> [NodeAddress] {
        let plan = configuration.routing.plan(
            partitionKey: partitionKey, keyspace: message.keyspace, nodes: configuration.nodes)
        guard !plan.isEmpty else { throw ConfabClientError(.invalidArgument, "no node addresses given") }
        return Array(plan.prefix(max(1, min(configuration.maxAttempts ?? plan.count, plan.count))))
    }

    /// Tries `nodes` in turn; `failures` are the attempts already made (on other nodes), which the
    /// final error takes into account.
    private func send(
        _ message: WireMessage, to nodes: ArraySlice<NodeAddress>, failures: [(NodeAddress, any Error)],
        answeredBy: (String) -> Void = { _ in }
    ) async throws -> WireMessage {
        var failures = failures
        for address in nodes {
            do {
                let connection = try await pool.connection(to: address)
                let reply = try await connection.request(message, timeout: configuration.requestTimeout)
                if case .error(let e) = reply {
                    if e.code.isRetryableElsewhere {
                        failures.append((address, e))
                        continue
                    }
                    throw e
                }
                answeredBy(connection.nodeID)
                return reply
            } catch let error as ConfabClientError where error.isRetryableElsewhere {
                logger.debug(
                    "request failed, trying the next node", metadata: ["node": "\(address)", "error": "\(error)"])
                failures.append((address, error))
            }
        }
        throw Self.finalError(failures)
    }

    /// What a request that failed on every node it tried throws. Prefers what a node said over
    /// what the network did.
    private static func finalError(_ failures: [(NodeAddress, any Error)]) -> any Error {
        if let (_, nodeError) = failures.last(where: { $0.1 is WireError }) { return nodeError }
        if failures.allSatisfy({ ($0.1 as? ConfabClientError)?.code == .noNodeReachable }) {
            let addresses = failures.map { "\($0.0)" }.joined(separator: ", ")
            return ConfabClientError(.noNodeReachable, "no node reachable at \(addresses); is `confab node` running?")
        }
        return failures.last!.1
    }

    private func writeRequest(_ mutation: Mutation, _ consistency: ConsistencyLevel) throws -> WireMessage {
        let table = try configuration.schema.resolve(id: mutation.table)
        return .write(
            WriteRequest(keyspace: table.keyspace, table: table.name, mutation: mutation, consistency: consistency))
    }

    private func readRequest(_ query: SliceQuery, _ consistency: ConsistencyLevel) throws -> WireMessage {
        .read(ReadRequest(query, schema: try configuration.schema.resolve(id: query.table), consistency: consistency))
    }

    // MARK: Requests without a task

    /// `write` for a caller that handles the answer in a callback instead of suspending a task (a
    /// load generator issuing thousands of writes a second, a server on an event loop); the same
    /// request, guarantees and retries. The future completes on an event loop of the client's
    /// group.
    public func submitWrite(_ mutation: Mutation, consistency: ConsistencyLevel = .quorum) -> EventLoopFuture<
        WriteAck
    > {
        submit(partitionKey: mutation.partitionKey, try self.writeRequest(mutation, consistency)) { reply in
            guard case .writeAck(let ack) = reply else { throw self.unexpected(reply, for: .write) }
            return ack
        }
    }

    /// `read` for a caller that handles the answer in a callback; see `submitWrite`.
    public func submitRead(_ query: SliceQuery, consistency: ConsistencyLevel = .quorum) -> EventLoopFuture<
        ReplicaRows
    > {
        submit(partitionKey: query.partitionKey, try self.readRequest(query, consistency)) { reply in
            guard case .readResponse(.rows(let rows)) = reply else { throw self.unexpected(reply, for: .read) }
            return rows
        }
    }

    /// Why not always a task: a task per request costs two thread wake-ups (onto the cooperative
    /// pool, and back when the answer comes) and the write hops onto the connection's loop, which
    /// on a small machine took as much CPU in a load generator as the node spent serving it.
    /// When the first planned node's connection is open (the steady state), the request is written
    /// from the caller's thread and answered from the connection's loop, with no task. Learning the
    /// ring, opening a connection and trying the next node after a failure take the async path.
    private func submit<T: Sendable>(
        partitionKey: [UInt8]?, _ request: @autoclosure () throws -> WireMessage,
        decode: @escaping @Sendable (WireMessage) throws -> T
    ) -> EventLoopFuture<T> {
        let message: WireMessage
        let plan: [NodeAddress]
        do {
            message = try request()
            plan = needsTopology(partitionKey) ? [] : try attemptPlan(message, partitionKey: partitionKey)
        } catch {
            return eventLoopGroup.any().makeFailedFuture(error)
        }
        guard let first = plan.first, let connection = pool.readyConnection(to: first) else {
            let promise = eventLoopGroup.any().makePromise(of: T.self)
            promise.completeWithTask { try decode(try await self.send(message, partitionKey: partitionKey)) }
            return promise.futureResult
        }
        let promise = connection.eventLoop.makePromise(of: T.self)
        let rest = plan.dropFirst()
        connection.send(message, timeout: configuration.requestTimeout).whenComplete { result in
            let failure: any Error
            switch result {
            case .success(.error(let e)) where e.code.isRetryableElsewhere:
                failure = e
            case .success(.error(let e)):
                promise.fail(e)
                return
            case .success(let reply):
                promise.completeWith(Result { try decode(reply) })
                return
            case .failure(let error as ConfabClientError) where error.isRetryableElsewhere:
                failure = error
            case .failure(let error):
                promise.fail(error)
                return
            }
            guard !rest.isEmpty else {
                promise.fail(Self.finalError([(first, failure)]))
                return
            }
            promise.completeWithTask {
                try decode(try await self.send(message, to: rest, failures: [(first, failure)]))
            }
        }
        return promise.futureResult
    }

    private func unexpected(_ reply: WireMessage, for request: MessageType) -> ConfabClientError {
        ConfabClientError(.unexpectedResponse, "a node answered \(request.name ?? "a request") with \(reply.type)")
    }
}

/// The client's failures are its connections' (`ConfabTransport.ConnectionError`): no node
/// reachable, a connection lost, no answer in time.
public typealias ConfabClientError = ConnectionError
