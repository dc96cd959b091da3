import ConfabRing
import ConfabTransport
import ConfabWire
import Logging
import NIOCore
import NIOSSL

/// Node-to-node messaging over multiplexed connections (ConfabClient's `NodeConnection` and
/// `ConnectionPool`, opened with a Hello naming this node): one request lane per peer for each of
/// this node's event loops, lane i opened on loop i, and one more for gossip alone, so a busy
/// node's gossip never queues behind its data and the node is not convicted for being busy. A
/// dead connection is replaced on next use.
///
/// Why a lane per loop: a coordinator runs on its client connection's loop, and sends replica
/// requests on that loop's own lane (`request(_:to:timeout:from:completion:)`). The request is
/// written, answered and completed there: no hop to another loop to write it and none back to
/// answer the client, which `perf` counted as two thread wake-ups per replica request when lanes
/// were taken in turn. Peers still spread the lanes over their own loops (they accept in turn).
///
/// Guarantees: `request` returns the peer's answer (an Error answer is thrown as its
/// `WireError`) or throws `InternodeFailure` within `connectTimeout + timeout`; a one-way send is
/// best effort (gossip tolerates loss).
struct InternodeMessenger: Sendable {
    /// How a request to a peer failed: the peer could not be reached or did not answer in time
    /// (`isConnectionFailure`), as opposed to an error the peer reported.
    struct InternodeFailure: Error, CustomStringConvertible {
        var peer: NodeAddress
        var underlying: any Error
        var description: String { "\(peer): \(underlying)" }
    }

    let pool: ConnectionPool
    let logger: Logger
    /// Lane index of each of the group's loops.
    private let laneOfLoop: [ObjectIdentifier: Int]

    /// - Parameter credentials: how this node authenticates to its peers (nil when the ring runs
    ///   without a cluster secret).
    init(
        localID: String, group: any EventLoopGroup, connectTimeout: Duration = .seconds(1),
        maxFrameBytes: Int, tls: NIOSSLContext? = nil, credentials: ClusterCredentials? = nil,
        logger: Logger
    ) {
        self.logger = logger
        let loops = Array(group.makeIterator())
        self.laneOfLoop = Dictionary(
            loops.enumerated().map { (ObjectIdentifier($0.element), $0.offset) }, uniquingKeysWith: { a, _ in a })
        self.pool = ConnectionPool(lanes: loops.count) { address, lane in
            // Lane i on loop i; the dedicated lane (gossip) wherever the group puts it.
            let home: any EventLoopGroup = loops.indices.contains(lane) ? loops[lane] : group
            return try await NodeConnection.connect(
                to: address, group: home, connectTimeout: connectTimeout,
                requestTimeout: .seconds(5), maxFrameBytes: maxFrameBytes,
                clientName: "confab node \(localID)", credentials: credentials, tls: tls)
        }
    }

    /// Sends `message` to the node at `address` and returns its answer.
    func request(_ message: WireMessage, to address: NodeAddress, timeout: Duration) async throws -> WireMessage {
        try await request(message, to: address, timeout: timeout, lane: nil)
    }

    /// The same on lane `lane`, or the next lane in turn when nil.
    private func request(_ message: WireMessage, to address: NodeAddress, timeout: Duration, lane: Int?)
        async throws -> WireMessage
    {
        let reply: WireMessage
        do {
            let connection = try await pool.connection(to: address, lane: lane)
            reply = try await connection.request(message, timeout: timeout)
        } catch {
            throw InternodeFailure(peer: address, underlying: error)
        }
        if case .error(let e) = reply { throw e }
        return reply
    }

    /// The same as `request(_:to:timeout:)` without a task: `completion` gets the answer (or the
    /// same errors) on the connection's event loop — `loop` itself when it is one of this
    /// messenger's group (the lane opened on it). With the connection already open — the steady
    /// state — nothing is scheduled besides the socket write; otherwise a task opens it first.
    /// Coordinators use it for replica requests, whose answers feed a state machine.
    func request(
        _ message: WireMessage, to address: NodeAddress, timeout: Duration, from loop: any EventLoop,
        completion: @escaping @Sendable (Result<WireMessage, any Error>) -> Void
    ) {
        let lane = laneOfLoop[ObjectIdentifier(loop)]
        guard let connection = pool.readyConnection(to: address, lane: lane) else {
            // Answered on the caller's loop like the steady state, once the lane is open.
            let answer: @Sendable (Result<WireMessage, any Error>) -> Void
            if lane == nil {
                answer = completion
            } else {
                answer = { result in loop.execute { completion(result) } }
            }
            Task {
                do { answer(.success(try await request(message, to: address, timeout: timeout, lane: lane))) } catch {
                    answer(.failure(error))
                }
            }
            return
        }
        connection.send(message, timeout: timeout).whenComplete { result in
            switch result {
            case .success(.error(let e)): completion(.failure(e))
            case .success(let reply): completion(.success(reply))
            case .failure(let error): completion(.failure(InternodeFailure(peer: address, underlying: error)))
            }
        }
    }

    /// Sends a one-way message (gossip) on the peer's dedicated connection without waiting;
    /// failures are logged at debug level.
    func send(_ message: WireMessage, to address: NodeAddress) {
        let pool = self.pool
        let logger = self.logger
        Task {
            do {
                try await pool.dedicated(to: address).sendOneWay(message)
            } catch let error as WireError where error.code == .unauthorized || error.code == .forbidden {
                // Not a network blip: the peer refused this node's answer (another cluster
                // secret?). It will never gossip with it until an operator fixes that.
                logger.warning(
                    "a peer refused this node's authentication", metadata: ["peer": "\(address)", "error": "\(error)"])
            } catch {
                logger.debug("gossip send failed", metadata: ["peer": "\(address)", "error": "\(error)"])
            }
        }
    }

    func shutdown() async { await pool.shutdown() }
}
