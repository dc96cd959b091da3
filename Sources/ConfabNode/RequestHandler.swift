import ConfabEngine
import ConfabRing
import ConfabWire
import Logging
import NIOCore

/// Turns one request frame into its response message: decodes, validates against the schema,
/// calls the `RequestProcessor`, maps failures to Error messages, records metrics. Stateless and
/// shared by every connection; per-connection ordering and limits are `NodeServer`'s job.
struct RequestHandler: Sendable {
    let processor: any RequestProcessor
    /// This node's data for the replica side of the internode protocol.
    let replica: LocalReplica?
    /// Receives gossip.
    let ring: ClusterService?
    let schema: SchemaRegistry
    let nodeID: String
    let clusterName: String
    let maxFrameBytes: Int
    let metrics: NodeMetrics
    let logger: Logger

    /// The response to send on the frame's stream, nil for one-way messages (gossip). Never
    /// throws: every failure becomes `.error`. `interim` sends a message on the frame's stream
    /// before the response (a Repair's progress frames); it must not be called after returning.
    ///
    /// `peerNode` is the id the connection authenticated as (nil when it is not a node or the node
    /// runs without a secret): gossip from an authenticated node must come from that node.
    func respond(
        to frame: Frame, peerNode: String? = nil,
        interim: @escaping @Sendable (WireMessage) async -> Void = { _ in }
    ) async -> WireMessage? {
        let start = ContinuousClock.now
        metrics.request(frame.type)
        let response: WireMessage
        do {
            let message = try WireMessage.decode(frame)
            if case .gossip(let g) = message {
                if let peerNode, g.from.id != peerNode {
                    logger.warning(
                        "dropped gossip claiming another node's id",
                        metadata: [
                            "authenticated_as": "\(peerNode)", "claimed": "\(g.from.id)",
                        ])
                    throw WireError(
                        .forbidden,
                        "this connection authenticated as node \(peerNode) but the gossip is from \(g.from.id)")
                }
                await ring?.receive(g)
                return nil
            }
            response = try await handle(message, interim: interim)
        } catch {
            response = errorResponse(error, frame.type)
        }
        if case .error(let e) = response { metrics.error(frame.type, e.code) }
        metrics.latency(frame.type, ContinuousClock.now - start)
        return response
    }

    /// What a client sees for a failure: a `WireError` as it is, a `StorageError` with its
    /// client-facing meaning, anything else as a `server` error (and logged).
    private func errorResponse(_ error: any Error, _ type: MessageType) -> WireMessage {
        switch error {
        case let error as WireError: return .error(error)
        case let error as StorageError: return .error(Self.wireError(for: error))
        default:
            logger.error("request failed", metadata: ["type": "\(type)", "error": "\(error)"])
            return .error(WireError(.server, "\(error)"))
        }
    }

    /// The request types `respondInline` serves: the data path, client and internode.
    static let inlineTypes: Set<MessageType> = [.ping, .write, .read, .replicaWrite, .replicaRead]

    /// Serves a data request without a task: decoded, validated and coordinated on the calling
    /// thread (the connection's event loop), answered through `reply` exactly once, from whichever
    /// thread completes it (a replica's answer, the WAL sync, a read thread, the deadline). False,
    /// with nothing done, for a type it does not serve (`respond` serves those in a task).
    ///
    /// Why: a task per request was two hand-offs (loop → task → loop) on every read and write,
    /// and the engine and the drivers already answer through callbacks.
    func respondInline(
        to frame: Frame, on loop: any EventLoop, reply: @escaping @Sendable (WireMessage) -> Void
    ) -> Bool {
        guard Self.inlineTypes.contains(frame.type) else { return false }
        let start = ContinuousClock.now
        metrics.request(frame.type)
        let (metrics, type) = (self.metrics, frame.type)
        let handler = self
        let finish: @Sendable (Result<WireMessage, any Error>) -> Void = { result in
            let response: WireMessage
            switch result {
            case .success(let message): response = message
            case .failure(let error): response = handler.errorResponse(error, type)
            }
            if case .error(let e) = response { metrics.error(type, e.code) }
            metrics.latency(type, ContinuousClock.now - start)
            reply(response)
        }
        do {
            switch try WireMessage.decode(frame) {
            case .ping(let nonce):
                finish(.success(.pong(nonce: nonce)))
            case .write(let request):
                let table = try validate(request)
                processor.write(request.mutation, table: table, consistency: request.consistency, on: loop) {
                    result in finish(result.map { .writeAck($0) })
                }
            case .read(let request):
                let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
                guard !request.partitionKey.isEmpty else {
                    throw WireError(.invalid, "empty partition key (\(table.partitionKey))")
                }
                guard request.limit > 0 else { throw WireError(.invalid, "limit must be at least 1") }
                processor.read(
                    request.sliceQuery(table: table.id), table: table, consistency: request.consistency,
                    digestOnly: request.digestOnly, on: loop
                ) { result in finish(result.map { .readResponse($0) }) }
            case .replicaWrite(let request):
                let replica = try internode()
                _ = try validate(request)
                replica.apply(request.mutation, on: loop) { error in
                    finish(error.map { .failure($0) } ?? .success(.replicaWriteAck))
                }
            case .replicaRead(let request):
                let replica = try internode()
                let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
                guard request.limit > 0 else { throw WireError(.invalid, "limit must be at least 1") }
                let digestOnly = request.digestOnly
                replica.read(request.sliceQuery(table: table.id)) { result in
                    finish(result.map { .replicaReadResponse(digestOnly ? .digest($0.digest()) : .data($0)) })
                }
            default:
                // The frame's type said otherwise; its body decoded as another message.
                throw WireError(.protocolError, "a \(frame.type) frame did not decode as one")
            }
        } catch {
            finish(.failure(error))
        }
        return true
    }

    /// Called once `response` to `frame` was handed to the connection (or the connection
    /// failed). A node that answered its own decommission may shut down now: the answer was
    /// queued on the connection before the shutdown closes it, so the operator's
    /// `confab ring decommission` gets it.
    func answered(_ frame: Frame, with response: WireMessage) {
        guard frame.type == .admin, case .adminResponse = response,
            case .admin(let request)? = try? WireMessage.decode(frame), request.operation == .decommission
        else { return }
        ring?.onDecommissioned()
    }

    private func handle(_ message: WireMessage, interim: @escaping @Sendable (WireMessage) async -> Void) async throws
        -> WireMessage
    {
        switch message {
        case .hello, .authenticate:
            // They change the connection's state, so `NodeServer` answers them (ConnectionGate).
            throw WireError(.protocolError, "\(message.type) is answered by the connection, not as a request")
        case .ping, .write, .read, .replicaWrite, .replicaRead:
            // The data path is served on the event loop by `respondInline`; a connection never
            // hands these to the task path.
            throw WireError(.server, "\(message.type) is served by respondInline, not in a task")
        case .status:
            var status = try await processor.status()
            if status.clusterName.isEmpty { status.clusterName = clusterName }
            for i in status.nodes.indices where status.nodes[i].id.isEmpty { status.nodes[i].id = nodeID }
            return .statusResponse(status)
        case .hintReplay(let hint):
            let replica = try internode()
            _ = try schema.resolve(id: hint.mutation.table)
            try await replica.apply(hint.mutation)
            return .hintReplayAck(id: hint.id)
        case .admin(let request):
            let ring = try ringRuntime()
            let executor = AdminExecutor(replica: try internode(), ring: ring, messenger: ring.messenger)
            return .adminResponse(try await executor.run(request))
        case .repair(let request):
            let ring = try ringRuntime()
            let runner = RepairRunner(
                ring: ring, replica: try internode(), messenger: ring.messenger,
                schema: schema, logger: logger)
            let progress: (@Sendable (RepairProgress) async -> Void)? =
                request.progress ? { @Sendable p in await interim(.repairProgress(p)) } : nil
            return .repairResponse(try await runner.run(depth: Int(request.depth), progress: progress))
        case .merkleTreeRequest(let request):
            let replica = try internode()
            let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
            let tree = try await replica.merkleTree(table: table.id, range: request.range, depth: request.depth)
            return .merkleTreeResponse(MerkleTreeLeaves(tree))
        case .streamRanges(let request):
            let ring = try ringRuntime()
            let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
            let source = RangeStreamSource(replica: try internode(), messenger: ring.messenger)
            return .streamRangesDone(try await source.send(table: table, ranges: request.ranges, to: request.target))
        case .gossip:
            // One-way: `respond` hands gossip to the ring before getting here.
            throw WireError(.protocolError, "gossip messages are one-way and get no answer")
        case .helloAck, .pong, .error, .authenticateAck, .writeAck, .readResponse, .statusResponse, .replicaWriteAck,
            .replicaReadResponse,
            .hintReplayAck, .adminResponse, .repairResponse, .merkleTreeResponse, .streamRangesDone,
            .repairProgress:
            throw WireError(.protocolError, "\(message.type) is a response; a node does not accept it as a request")
        }
    }

    /// The table exists, matches the mutation, and the partition key is not empty: the table.
    private func validate(_ request: WriteRequest) throws(WireError) -> TableSchema {
        let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
        guard request.mutation.table == table.id else {
            throw WireError(
                .invalid,
                "the mutation is for table id \(request.mutation.table) but names \(table.qualifiedName) (id \(table.id))"
            )
        }
        guard !request.mutation.partitionKey.isEmpty else {
            throw WireError(.invalid, "empty partition key (\(table.partitionKey))")
        }
        return table
    }

    private func internode() throws(WireError) -> LocalReplica {
        guard let replica else { throw WireError(.protocolError, "this node does not serve internode requests") }
        return replica
    }

    private func ringRuntime() throws(WireError) -> ClusterService {
        guard let ring else {
            throw WireError(.invalid, "this node runs without the ring runtime; admin and repair requests need it")
        }
        return ring
    }

    /// The client-facing meaning of an engine error.
    static func wireError(for error: StorageError) -> WireError {
        switch error.code {
        case .invalidArgument: return WireError(.invalid, error.message)
        case .tooLarge: return WireError(.tooLarge, error.message)
        case .closed: return WireError(.unavailable, "this node is shutting down (\(error.message))")
        case .notFound: return WireError(.notFound, error.message)
        default: return WireError(.server, error.description)
        }
    }
}
