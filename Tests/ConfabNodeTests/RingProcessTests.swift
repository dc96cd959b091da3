import ConfabClient
import ConfabRing
import ConfabWire
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Round robin over the configured nodes that remembers the coordinator it planned last (the
/// first node of the plan): with one request at a time and every node up, that is the node
/// that coordinated the request.
final class CoordinatorRecordingRouting: RoutingPolicy {
    private let inner = RoundRobinRouting()
    private let last = NIOLockedValueBox<NodeAddress?>(nil)

    func plan(partitionKey: [UInt8]?, nodes: [NodeAddress]) -> [NodeAddress] {
        let plan = inner.plan(partitionKey: partitionKey, nodes: nodes)
        last.withLockedValue { $0 = plan.first }
        return plan
    }

    var lastCoordinator: NodeAddress? { last.withLockedValue { $0 } }
}

/// Three real `confab node` processes on 127.0.0.1 (the binary next to the test bundle), RF 3.
@Suite(.serialized) struct RingProcessTests {
    @Test func sigkillDuringQuorumWritesLosesNothingAndHintsConverge() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-ring-proc")
        let fast =
            ["--rf", "3", "--vnodes", "16", "--gossip-interval-ms", "200", "--write-timeout-ms", "1000"]
            + (ProcessInfo.processInfo.environment["CONFAB_NODE_LOG_LEVEL"].map { ["--log-level", $0] } ?? [])
        let p1 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n1", logDir: dir.path, tag: "n1", arguments: fast)
        let port1 = try await p1.waitUntilListening()
        let seeds = ["--seeds", "127.0.0.1:\(port1)"]
        let p2 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n2", logDir: dir.path, tag: "n2", arguments: fast + seeds)
        var p3 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n3", logDir: dir.path, tag: "n3", arguments: fast + seeds)
        let port2 = try await p2.waitUntilListening()
        let port3 = try await p3.waitUntilListening()
        let addresses = [port1, port2, port3].map { NodeAddress(host: "127.0.0.1", port: $0) }
        let status = ConfabClient.forTests(nodes: [addresses[0]])
        for address in addresses {
            let c = ConfabClient.forTests(nodes: [address])
            try await eventually("\(address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
            await c.shutdown()
        }

        // A stream of QUORUM writes through every node in turn (the client moves on to the next
        // node when one cannot be reached); SIGKILL the third node in the middle. The writes n3
        // coordinated before it died are noted: see below.
        let chat: Int64 = 31337
        let routing = CoordinatorRecordingRouting()
        var config = ConfabClient.Configuration(nodes: addresses)
        config.schema = TestSchema.registry
        config.requestTimeout = .seconds(5)
        config.routing = routing
        let client = ConfabClient(configuration: config)
        var acknowledged: Set<String> = []
        var coordinatedByN3: Set<String> = []
        var failed = 0
        for i in 0..<300 {
            if i == 120 {
                p3.signal(SIGKILL)
                _ = try await p3.waitForExit()
            }
            do {
                let m = try await client.post(chatId: chat, sender: "w", text: "write \(i)", messageId: "m-\(i)")
                acknowledged.insert(m.messageId)
                if i < 120, routing.lastCoordinator == addresses[2] { coordinatedByN3.insert(m.messageId) }
            } catch {
                failed += 1
            }
        }
        #expect(acknowledged.count >= 290, "\(failed) writes failed")
        print(
            "ring process test: \(acknowledged.count) of 300 QUORUM writes acknowledged, \(failed) failed (SIGKILL at 120)"
        )
        let survivors = ConfabClient.forTests(nodes: [addresses[0], addresses[1]])
        let quorum = try await survivors.history(chatId: chat, limit: 1000, consistency: .quorum)
        #expect(
            Set(quorum.map(\.messageId)).isSuperset(of: acknowledged),
            "lost \(acknowledged.subtracting(quorum.map(\.messageId)).count)")

        // Restart it on its port: hints replay until its own data (ONE reads it coordinates,
        // answered from its engine alone) holds every acknowledged write that n1 or n2
        // coordinated — each one n3 missed was hinted durably before it was acknowledged. The
        // only writes hints cannot bring back are ones n3 itself coordinated in its last instant
        // (acknowledged by n1 and n2 while n3's own copy was still in its group commit; nobody
        // hints a coordinator's own copy, in Cassandra either): the wait allows exactly those
        // and no others, and the ALL read below must repair them.
        p3 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n3", logDir: dir.path, tag: "n3b",
            listen: "127.0.0.1:\(port3)", arguments: fast + seeds)
        _ = try await p3.waitUntilListening()
        try await eventually("3 normal nodes after restart") { try await ringIsNormal(status, count: 3) }
        let c3 = ConfabClient.forTests(nodes: [addresses[2]])
        let restarted = ContinuousClock.now
        func missingOnN3() async throws -> Set<String> {
            let ones = try await c3.history(chatId: chat, limit: 1000, consistency: .one)
            return acknowledged.subtracting(ones.map(\.messageId))
        }
        var last = "nothing read yet"
        do {
            try await eventually("n3 converged through hints", within: .seconds(20)) {
                do {
                    let missing = try await missingOnN3()
                    let unexplained = missing.subtracting(coordinatedByN3)
                    last =
                        "\(missing.count) missing, \(unexplained.count) of them coordinated by n1 or n2: \(unexplained.sorted().prefix(10))"
                    return unexplained.isEmpty
                } catch {
                    last = "\(error)"
                    throw error
                }
            }
        } catch {
            if let keep = ProcessInfo.processInfo.environment["CONFAB_KEEP_LOGS"] {
                try? FileManager.default.copyItem(atPath: dir.path, toPath: "\(keep)/ring-\(UUID().uuidString)")
            }
            Issue.record("n3 did not converge: \(last)")
            throw error
        }
        print(
            "ring process test: n3 converged \(ContinuousClock.now - restarted) after rejoining; \(try await missingOnN3().count) write(s) left for read repair"
        )

        // `confab history --consistency all` returns every acknowledged message (and repairs n3).
        let all = try await runConfab(
            binary,
            [
                "history", "\(chat)", "--json", "--limit", "1000", "--consistency", "all",
                "--node", "127.0.0.1:\(port3)",
            ])
        #expect(all.status == 0, "history failed: \(all.err)")
        let ids = all.out.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["message_id"] as? String
        }
        #expect(Set(ids).isSuperset(of: acknowledged))
        #expect(try await missingOnN3().isEmpty)

        for c in [status, client, survivors, c3] { await c.shutdown() }
        for p in [p1, p2, p3] {
            p.signal(SIGTERM)
            #expect(try await p.waitForExit() == 0)
        }
    }
}
