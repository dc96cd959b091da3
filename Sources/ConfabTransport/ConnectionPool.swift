import ConfabRing
import NIOCore
import Synchronization

/// Open connections to nodes, `lanes` per node, reused by every request; a dead connection is
/// replaced on next use. Concurrent first uses of a lane share one connect.
///
/// Why lanes: a node serves a connection's requests on that connection's event loop (decoded,
/// coordinated and answered there, with no task), so one connection per node put all of one
/// client's load on one of the node's cores. Requests take the lanes in turn; a node accepts the
/// lanes onto its event loops in turn. `dedicated(to:)` opens a separate lane (gossip), so its
/// messages never wait behind data on a busy connection.
///
/// A caller already on an event loop (a coordinator sending replica requests) names its lane
/// instead (`readyConnection(to:lane:)`): the messenger opens lane i on its group's loop i, so
/// the request is written, answered and completed on the caller's own thread, with no hand-off
/// to another loop and back.
///
/// The open connections are mirrored behind a lock (`ready`) so that the common case — the
/// connection exists and is active — costs no hop onto the actor: every coordinated write and
/// read asks for one per replica, and on a loaded node each actor hop is a scheduling round.
package actor ConnectionPool {
    /// One connection's place: its node and lane (`dedicatedLane` for the separate one).
    private struct Key: Hashable {
        var address: NodeAddress
        var lane: Int
    }

    private static let dedicatedLane = -1

    private var connections: [Key: NodeConnection] = [:] {
        didSet { ready.withLock { $0 = connections } }
    }
    private nonisolated let ready = Mutex<[Key: NodeConnection]>([:])
    private nonisolated let turn = Atomic<Int>(0)
    private var connecting: [Key: Task<NodeConnection, any Error>] = [:]
    private var isShutDown = false
    private let connect: @Sendable (NodeAddress, _ lane: Int) async throws -> NodeConnection
    /// Connections per node for requests.
    package nonisolated let lanes: Int

    /// `connect(address, lane)` opens one lane's connection (`dedicatedLane`, -1, for the
    /// separate one).
    package init(
        lanes: Int = 1, connect: @escaping @Sendable (NodeAddress, _ lane: Int) async throws -> NodeConnection
    ) {
        self.lanes = max(1, lanes)
        self.connect = connect
    }

    /// Lane `lane`'s connection to `address` (0 ..< `lanes`; nil: the next lane in turn), opened
    /// if needed.
    package nonisolated func connection(to address: NodeAddress, lane: Int? = nil) async throws -> NodeConnection {
        let key = Key(address: address, lane: lane.map { $0 % lanes } ?? nextLane())
        if let c = readyConnection(key) { return c }
        return try await openConnection(key)
    }

    /// Lane `lane`'s connection to `address` (nil: the next lane in turn) if it is open and
    /// active, without waiting.
    package nonisolated func readyConnection(to address: NodeAddress, lane: Int? = nil) -> NodeConnection? {
        readyConnection(Key(address: address, lane: lane.map { $0 % lanes } ?? nextLane()))
    }

    /// The connection to `address` kept apart from the request lanes, opened if needed.
    package nonisolated func dedicated(to address: NodeAddress) async throws -> NodeConnection {
        let key = Key(address: address, lane: Self.dedicatedLane)
        if let c = readyConnection(key) { return c }
        return try await openConnection(key)
    }

    private nonisolated func nextLane() -> Int {
        lanes == 1 ? 0 : turn.wrappingAdd(1, ordering: .relaxed).oldValue % lanes
    }

    private nonisolated func readyConnection(_ key: Key) -> NodeConnection? {
        guard let c = ready.withLock({ $0[key] }), c.isActive else { return nil }
        return c
    }

    private func openConnection(_ key: Key) async throws -> NodeConnection {
        guard !isShutDown else { throw ConnectionError(.shutDown, "the client was shut down") }
        if let c = connections[key], c.isActive { return c }
        connections[key] = nil
        if let task = connecting[key] { return try await task.value }
        let connect = self.connect
        let (address, lane) = (key.address, key.lane)
        let task = Task { try await connect(address, lane) }
        connecting[key] = task
        defer { connecting[key] = nil }
        let c = try await task.value
        if isShutDown {
            await c.close()
            throw ConnectionError(.shutDown, "the client was shut down")
        }
        connections[key] = c
        return c
    }

    package func shutdown() async {
        isShutDown = true
        let all = connections.values
        connections.removeAll()
        for c in all { await c.close() }
    }
}
