import ConfabRing
import ConfabWire

/// Runs `confab flush` and `confab compact` on this node, or on every ring member through it.
///
/// The engine work runs on the thread pool (`LocalReplica`), never on an event loop. Scope
/// `ring` forwards the request with scope `node` to every member concurrently and reports each
/// one's outcome — a member that is down or fails is a failed result, not a failed request, so
/// the operator sees which nodes did the work.
struct AdminExecutor: Sendable {
    let replica: LocalReplica
    let ring: ClusterService
    let messenger: InternodeMessenger
    /// How long a forwarded request may take (a major compaction of a large node is slow).
    var forwardTimeout: Duration = .seconds(3600)

    func run(_ request: AdminRequest) async throws -> AdminResponse {
        let local = await ring.localNode()
        if request.operation == .decommission {
            // Leaving is something a node does to itself: never fanned out to the whole ring.
            guard request.scope == .node else {
                throw WireError(
                    .invalid,
                    "decommission applies to the node that receives it; send it with scope node to the node that should leave"
                )
            }
            let start = ContinuousClock.now
            _ = try await ring.decommission()
            return AdminResponse(results: [
                AdminResult(
                    nodeID: local?.id ?? ring.localID,
                    address: local.map { "\($0.address)" } ?? "",
                    elapsedMicros: (ContinuousClock.now - start).micros)
            ])
        }
        switch request.scope {
        case .node:
            let elapsed = try await runLocally(request.operation)
            return AdminResponse(results: [
                AdminResult(
                    nodeID: local?.id ?? ring.localID,
                    address: local.map { "\($0.address)" } ?? "",
                    elapsedMicros: elapsed)
            ])
        case .ring:
            let snapshot = try ring.snapshot()
            let members = Set(snapshot.ring.nodes + snapshot.joining + [snapshot.local]).sorted()
            let forwarded = AdminRequest(operation: request.operation, scope: .node)
            let results = await withTaskGroup(of: AdminResult.self) { group in
                for member in members {
                    group.addTask { await self.result(of: forwarded, on: member, local: snapshot.local) }
                }
                var out: [AdminResult] = []
                for await r in group { out.append(r) }
                return out
            }
            return AdminResponse(results: results.sorted { $0.address < $1.address })
        }
    }

    private func result(of request: AdminRequest, on member: NodeID, local: NodeID) async -> AdminResult {
        let start = ContinuousClock.now
        func failed(_ error: any Error) -> AdminResult {
            AdminResult(
                nodeID: member.id, address: "\(member.address)", elapsedMicros: (ContinuousClock.now - start).micros,
                error: "\(error)")
        }
        if member == local {
            do {
                let elapsed = try await runLocally(request.operation)
                return AdminResult(nodeID: member.id, address: "\(member.address)", elapsedMicros: elapsed)
            } catch {
                return failed(error)
            }
        }
        do {
            let reply = try await messenger.request(.admin(request), to: member.address, timeout: forwardTimeout)
            guard case .adminResponse(let response) = reply, let first = response.results.first else {
                throw WireError(.protocolError, "\(member.address) answered Admin with \(reply.type)")
            }
            return first
        } catch {
            return failed(error)
        }
    }

    /// Runs the operation on this node's engine; returns the microseconds it took.
    private func runLocally(_ operation: AdminRequest.Operation) async throws -> UInt64 {
        let start = ContinuousClock.now
        switch operation {
        case .flush: try await replica.flush()
        case .compact: try await replica.compact()
        case .decommission:
            throw WireError(.invalid, "decommission is not forwarded; send it to the node that should leave")
        }
        return (ContinuousClock.now - start).micros
    }
}

extension Duration {
    var micros: UInt64 { UInt64(clamping: ringNanoseconds / 1000) }
}
