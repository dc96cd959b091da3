import ConfabEngine
import ConfabRing
import ConfabWire
import Logging

/// Turns one request frame into its response message: decodes, validates against the schema,
/// calls the `RequestProcessor`, maps failures to Error messages, records metrics. Stateless and
/// shared by every connection; per-connection ordering and limits are `NodeServer`'s job.
struct RequestHandler: Sendable {
    let processor: any RequestProcessor
    let schema: SchemaRegistry
    let nodeID: String
    let clusterName: String
    let maxFrameBytes: Int
    let metrics: NodeMetrics
    let logger: Logger

    /// The response to send on the frame's stream. Never throws: every failure becomes `.error`.
    func respond(to frame: Frame) async -> WireMessage {
        let start = ContinuousClock.now
        metrics.request(frame.type)
        let response: WireMessage
        do {
            response = try await handle(WireMessage.decode(frame))
        } catch let error as WireError {
            response = .error(error)
        } catch let error as StorageError {
            response = .error(Self.wireError(for: error))
        } catch {
            logger.error("request failed", metadata: ["type": "\(frame.type)", "error": "\(error)"])
            response = .error(WireError(.server, "\(error)"))
        }
        if case .error(let e) = response { metrics.error(frame.type, e.code) }
        metrics.latency(frame.type, ContinuousClock.now - start)
        return response
    }

    private func handle(_ message: WireMessage) async throws -> WireMessage {
        switch message {
        case .hello(let h):
            let v = ProtocolVersion.current
            guard h.minVersion <= v, v <= h.maxVersion else {
                throw WireError(.protocolError, "no common protocol version: the client speaks \(h.minVersion)...\(h.maxVersion), this node speaks \(v)")
            }
            return .helloAck(HelloAck(version: v, nodeID: nodeID, clusterName: clusterName))
        case .ping(let nonce):
            return .pong(nonce: nonce)
        case .write(let request):
            let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
            guard request.mutation.table == table.id else {
                throw WireError(.invalid, "the mutation is for table id \(request.mutation.table) but names \(table.qualifiedName) (id \(table.id))")
            }
            guard !request.mutation.partitionKey.isEmpty else {
                throw WireError(.invalid, "empty partition key (\(table.partitionKey))")
            }
            return .writeAck(try await processor.write(request.mutation, consistency: request.consistency))
        case .read(let request):
            let table = try schema.resolve(keyspace: request.keyspace, table: request.table)
            guard !request.partitionKey.isEmpty else { throw WireError(.invalid, "empty partition key (\(table.partitionKey))") }
            guard request.limit > 0 else { throw WireError(.invalid, "limit must be at least 1") }
            let response = try await processor.read(request.sliceQuery(table: table.id), consistency: request.consistency,
                                                    digestOnly: request.digestOnly)
            return .readResponse(response)
        case .status:
            var status = try await processor.status()
            if status.clusterName.isEmpty { status.clusterName = clusterName }
            for i in status.nodes.indices where status.nodes[i].id.isEmpty { status.nodes[i].id = nodeID }
            return .statusResponse(status)
        case .helloAck, .pong, .error, .writeAck, .readResponse, .statusResponse:
            throw WireError(.protocolError, "\(message.type) is a response; a node does not accept it as a request")
        }
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
