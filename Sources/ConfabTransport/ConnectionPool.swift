import ConfabRing
import NIOCore
import Synchronization

/// At most one open connection per node, reused by every request; a dead connection is replaced
/// on next use. Concurrent first uses of a node share one connect.
///
/// The open connections are mirrored behind a lock (`ready`) so that the common case — the
/// connection exists and is active — costs no hop onto the actor: every coordinated write and
/// read asks for one per replica, and on a loaded node each actor hop is a scheduling round.
package actor ConnectionPool {
    private var connections: [NodeAddress: NodeConnection] = [:] {
        didSet { ready.withLock { $0 = connections } }
    }
    private nonisolated let ready = Mutex<[NodeAddress: NodeConnection]>([:])
    private var connecting: [NodeAddress: Task<NodeConnection, any Error>] = [:]
    private var isShutDown = false
    private let connect: @Sendable (NodeAddress) async throws -> NodeConnection

    package init(connect: @escaping @Sendable (NodeAddress) async throws -> NodeConnection) {
        self.connect = connect
    }

    package nonisolated func connection(to address: NodeAddress) async throws -> NodeConnection {
        if let c = readyConnection(to: address) { return c }
        return try await openConnection(to: address)
    }

    /// The open, active connection to `address` if there is one, without waiting.
    package nonisolated func readyConnection(to address: NodeAddress) -> NodeConnection? {
        guard let c = ready.withLock({ $0[address] }), c.isActive else { return nil }
        return c
    }

    private func openConnection(to address: NodeAddress) async throws -> NodeConnection {
        guard !isShutDown else { throw ConnectionError(.shutDown, "the client was shut down") }
        if let c = connections[address], c.isActive { return c }
        connections[address] = nil
        if let task = connecting[address] { return try await task.value }
        let connect = self.connect
        let task = Task { try await connect(address) }
        connecting[address] = task
        defer { connecting[address] = nil }
        let c = try await task.value
        if isShutDown {
            await c.close()
            throw ConnectionError(.shutDown, "the client was shut down")
        }
        connections[address] = c
        return c
    }

    package func shutdown() async {
        isShutDown = true
        let all = connections.values
        connections.removeAll()
        for c in all { await c.close() }
    }
}
