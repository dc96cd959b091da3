import ConfabRing
import ConfabTransport
import NIOPosix
import Synchronization
import Testing

/// `ConnectionPool` lanes: requests take `lanes` connections per node in turn (a node serves a
/// connection on one event loop, so one connection was one core), and the dedicated connection
/// (gossip) is none of them.
@Suite struct ConnectionLanesTests {
    @Test func requestsTakeTheLanesInTurnAndTheDedicatedConnectionIsSeparate() async throws {
        let node = try await InProcessNode.start()
        let connects = Atomic<Int>(0)
        let pool = ConnectionPool(lanes: 2) { address in
            connects.wrappingAdd(1, ordering: .relaxed)
            return try await NodeConnection.connect(
                to: address, group: MultiThreadedEventLoopGroup.singleton, connectTimeout: .seconds(2),
                requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "lanes test")
        }
        var seen: [ObjectIdentifier] = []
        for _ in 0..<6 { seen.append(ObjectIdentifier(try await pool.connection(to: node.address))) }
        #expect(Set(seen).count == 2, "6 requests used \(Set(seen).count) connection(s)")
        // In turn: no two consecutive requests on one lane.
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 != $1 }, "\(seen)")
        let gossip = ObjectIdentifier(try await pool.dedicated(to: node.address))
        #expect(!seen.contains(gossip))
        #expect(ObjectIdentifier(try await pool.dedicated(to: node.address)) == gossip)
        #expect(connects.load(ordering: .relaxed) == 3)
        // An open lane is found without the actor, and the same lanes keep being used.
        let ready = (0..<4).compactMap { _ in pool.readyConnection(to: node.address).map(ObjectIdentifier.init) }
        #expect(ready.count == 4 && Set(ready) == Set(seen))
        await pool.shutdown()
        try await node.stop()
    }
}
