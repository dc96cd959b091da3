import ConfabRing
import ConfabTransport
import ConfabWire

/// Operator requests: flush, compact and repair on a named node, and a replica's Merkle tree.
/// Unlike reads and writes these are not retried on another node — the point is to act on that
/// node — and each takes its own timeout, since a compaction or a repair outlasts any read.
extension ConfabClient {
    /// Runs `operation` on the node at `address` (scope `.node`), or through it on every member of
    /// the ring it knows (scope `.ring`). Throws what the node reports or the connection failure.
    public func admin(
        _ operation: AdminRequest.Operation, scope: AdminRequest.Scope = .node, at address: NodeAddress,
        timeout: Duration
    ) async throws -> AdminResponse {
        let reply = try await request(
            .admin(AdminRequest(operation: operation, scope: scope)), to: address, timeout: timeout)
        guard case .adminResponse(let response) = reply else { throw unexpectedReply(reply, for: .admin) }
        return response
    }

    /// Has the node at `address` repair every vnode range it replicates with their other
    /// replicas; returns when the session ends. `depth` 0 means the node's default (10).
    public func repair(at address: NodeAddress, depth: UInt8 = 0, timeout: Duration) async throws -> RepairReport {
        let reply = try await request(.repair(RepairRequest(depth: depth)), to: address, timeout: timeout)
        guard case .repairResponse(let report) = reply else { throw unexpectedReply(reply, for: .repair) }
        return report
    }

    /// The same, calling `progress` with each `RepairProgress` the node sends while it works (after
    /// each table's start and each range; on the connection's event loop, so keep it short).
    public func repair(
        at address: NodeAddress, depth: UInt8 = 0, timeout: Duration,
        progress: @escaping @Sendable (RepairProgress) -> Void
    ) async throws -> RepairReport {
        let connection = try await pool.connection(to: address)
        let reply = try await connection.request(.repair(RepairRequest(depth: depth, progress: true)), timeout: timeout)
        {
            if case .repairProgress(let p) = $0 { progress(p) }
        }
        if case .error(let e) = reply { throw e }
        guard case .repairResponse(let report) = reply else { throw unexpectedReply(reply, for: .repair) }
        return report
    }

    /// The node's Merkle tree of `range` (how tests and tools check that replicas agree).
    public func merkleTree(
        at address: NodeAddress, range: TokenRange, depth: Int = 10,
        keyspace: String, table: String,
        timeout: Duration = .seconds(30)
    ) async throws -> MerkleTreeLeaves {
        let request = MerkleTreeRequest(keyspace: keyspace, table: table, range: range, depth: depth)
        let reply = try await self.request(.merkleTreeRequest(request), to: address, timeout: timeout)
        guard case .merkleTreeResponse(let leaves) = reply else {
            throw unexpectedReply(reply, for: .merkleTreeRequest)
        }
        return leaves
    }

    /// One request to one node; an Error answer is thrown as its `WireError`.
    func request(_ message: WireMessage, to address: NodeAddress, timeout: Duration) async throws -> WireMessage {
        let connection = try await pool.connection(to: address)
        let reply = try await connection.request(message, timeout: timeout)
        if case .error(let e) = reply { throw e }
        return reply
    }

    private func unexpectedReply(_ reply: WireMessage, for request: MessageType) -> ConfabClientError {
        ConfabClientError(.unexpectedResponse, "a node answered \(request.name ?? "a request") with \(reply.type)")
    }
}
