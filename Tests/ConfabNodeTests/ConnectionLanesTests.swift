import ConfabRing
import ConfabTransport
import Logging
import NIOPosix
import Synchronization
import Testing

@testable import ConfabNode

/// `ConnectionPool` lanes: requests take `lanes` connections per node in turn (a node serves a
/// connection on one event loop, so one connection was one core), and the dedicated connection
/// (gossip) is none of them.
@Suite struct ConnectionLanesTests {
    @Test func requestsTakeTheLanesInTurnAndTheDedicatedConnectionIsSeparate() async throws {
        let node = try await InProcessNode.start()
        let connects = Atomic<Int>(0)
        let pool = ConnectionPool(lanes: 2) { address, _ in
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

/// `InternodeMessenger` lanes follow the caller's event loop: a replica request sent from loop i
/// goes out on the lane opened on loop i, so its answer completes on loop i — the coordinator's
/// own thread — with no hop to another loop and back.
@Suite struct MessengerLoopLanesTests {
    @Test func aRequestFromALoopIsAnsweredOnThatLoop() async throws {
        let node = try await InProcessNode.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let messenger = InternodeMessenger(
            localID: "lanes-test", group: group, maxFrameBytes: 1 << 20, logger: Logger(label: "lanes-test"))
        let loops = Array(group.makeIterator())
        // Twice per loop, interleaved: taking lanes in turn would put some on another loop.
        for round in 0..<2 {
            for (index, loop) in loops.enumerated() {
                let answeredOn: Bool = try await withCheckedThrowingContinuation { c in
                    loop.execute {
                        messenger.request(.status, to: node.address, timeout: .seconds(5), from: loop) { result in
                            switch result {
                            case .success: c.resume(returning: loop.inEventLoop)
                            case .failure(let error): c.resume(throwing: error)
                            }
                        }
                    }
                }
                #expect(answeredOn, "round \(round): a request sent from loop \(index) was answered on another loop")
            }
        }
        await messenger.shutdown()
        try await group.shutdownGracefully()
        try await node.stop()
    }
}
