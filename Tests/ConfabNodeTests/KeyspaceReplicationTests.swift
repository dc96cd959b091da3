import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

@testable import ConfabNode

/// Replication factor per keyspace: replica selection, configuration, the wire, routing, and a
/// three-node ring where keyspace `confab` has RF 1 and `kv` RF 3.
@Suite struct KeyspaceReplicationTests {
    /// Two keyspaces, `a` at RF 1 and `b` at RF 3, one table each.
    static let schema = SchemaRegistry(
        tables: [
            TableSchema(keyspace: "a", name: "t", id: 101, partitionKey: "k", clusteringColumns: [], columns: [0: "v"]),
            TableSchema(keyspace: "b", name: "t", id: 102, partitionKey: "k", clusteringColumns: [], columns: [0: "v"]),
        ],
        keyspaces: [KeyspaceSchema(name: "a", replicationFactor: 1), KeyspaceSchema(name: "b", replicationFactor: 3)])

    func ring(nodes: Int, seed: UInt64) throws -> TokenRing {
        var rng = SplitMix64(seed: seed)
        var assignments: [NodeID: [Token]] = [:]
        for i in 0..<nodes {
            assignments[NodeID(id: "n\(i)", host: "127.0.0.1", port: 7400 + i)] =
                (0..<8).map { _ in Token(Int64.random(in: Int64.min...Int64.max, using: &rng)) }
        }
        return try TokenRing(assignments)
    }

    @Test(arguments: [1, 2, 3, 5])
    func replicaSetsFollowEachKeyspacesFactor(nodes: Int) throws {
        let seed = testSeed()
        let placement = ReplicaPlacement(ring: try ring(nodes: nodes, seed: seed), schema: Self.schema)
        #expect(placement.replicationFactor(keyspace: "a") == 1)
        #expect(placement.replicationFactor(keyspace: "b") == min(3, nodes))
        // A keyspace the schema does not list gets the default factor.
        #expect(placement.replicationFactor(keyspace: "unknown") == min(SchemaRegistry.defaultReplicationFactor, nodes))
        var primaries: Set<NodeID> = []
        for k in 0..<300 {
            let key = Array("key-\(k)".utf8)
            let a = placement.replicas(forPartitionKey: key, keyspace: "a")
            let b = placement.replicas(forPartitionKey: key, keyspace: "b")
            #expect(a.count == 1, "seed \(seed)")
            #expect(b.count == min(3, nodes) && Set(b).count == b.count, "seed \(seed)")
            // SimpleStrategy: the same walk from the key's token, cut at a different length.
            #expect(
                b.first == a.first && a.first == placement.ring.primaryOwner(of: Token(partitionKey: key)),
                "seed \(seed)")
            primaries.insert(a[0])
        }
        #expect(primaries.count == nodes, "300 keys should land on every node's ranges (seed \(seed))")
        // Repair's ranges: one replica per range in `a` (nothing to compare), min(3, N) in `b`.
        let rangesA = placement.rangesWithReplicas(keyspace: "a")
        let rangesB = placement.rangesWithReplicas(keyspace: "b")
        #expect(rangesA.count == nodes * 8 && rangesB.count == nodes * 8)
        #expect(rangesA.allSatisfy { $0.replicas.count == 1 })
        #expect(rangesB.allSatisfy { $0.replicas.count == min(3, nodes) })
        #expect(zip(rangesA, rangesB).allSatisfy { $0.range == $1.range && $0.replicas[0] == $1.replicas[0] })
    }

    @Test func configurationSetsDefaultAndPerKeyspaceFactors() throws {
        var c = NodeConfiguration(dataDirectory: "/tmp/x")
        c.tables = TestSchema.registry
        // Untouched: the schema's factors (3 for both).
        #expect(c.schema.replicationFactor(keyspace: "confab") == 3)
        #expect(c.schema.replicationFactor(keyspace: "kv") == 3)
        // replication_factor / --rf: the default for every keyspace.
        try c.set("replication_factor", "2")
        #expect(c.schema.replicationFactor(keyspace: "confab") == 2)
        #expect(c.schema.replicationFactor(keyspace: "kv") == 2)
        // replication / --replication: per keyspace, over the default.
        try c.apply(configFileContents: "replication = confab=1, kv=3\n", path: "node.conf")
        #expect(c.keyspaceReplication == ["confab": 1, "kv": 3])
        #expect(c.schema.replicationFactor(keyspace: "confab") == 1)
        #expect(c.schema.replicationFactor(keyspace: "kv") == 3)
        // Every table of a keyspace resolves to its keyspace's factor.
        for table in c.schema.tables {
            #expect(c.schema.replicationFactor(keyspace: table.keyspace) == (table.keyspace == "confab" ? 1 : 3))
        }
        for bad in ["confab", "confab=0", "confab=17", "nosuch=3", "confab=x"] {
            #expect(throws: NodeError.self, "\(bad)") { try c.set("replication", bad) }
        }
        do {
            try c.set("replication", "nosuch=2")
        } catch {
            #expect(error.message.contains("nosuch") && error.message.contains("confab"), "\(error.message)")
        }
    }

    @Test func statusCarriesKeyspaceFactorsAndRoutingUsesThem() throws {
        // Three nodes, each owning one third of the ring.
        let third = Int64.max / 3
        let tokens: [[Int64]] = [[-third], [third], [Int64.max - 1]]
        var status = RingStatus(
            clusterName: "c", replicationFactor: 3,
            nodes: (0..<3).map { i in
                RingNodeStatus(
                    state: "normal", isUp: true, id: "n\(i)", host: "127.0.0.1", port: UInt16(7400 + i),
                    loadBytes: 0, tokens: 1, ownership: 1, tokenValues: tokens[i])
            })
        status.keyspaces = [.init(name: "a", replicationFactor: 1), .init(name: "b", replicationFactor: 3)]
        let decoded = try WireMessage.decode(WireMessage.statusResponse(status).frame(streamID: 3))
        #expect(decoded == .statusResponse(status))
        // Without keyspaces the list is empty: a u16 count of 0.
        var plain = status
        plain.keyspaces = []
        #expect(try WireMessage.decode(WireMessage.statusResponse(plain).frame(streamID: 3)) == .statusResponse(plain))
        #expect(
            WireMessage.statusResponse(status).frame(streamID: 3).body.count
                == WireMessage.statusResponse(plain).frame(streamID: 3).body.count + (2 + 1 + 1) * 2)

        let routing = TokenAwareRouting()
        routing.update(from: status)
        var ring = TokenRing()
        for n in status.nodes {
            try ring.add(NodeID(id: n.id, host: n.host, port: Int(n.port)), tokens: n.tokenValues.map(Token.init))
        }
        let configured = [NodeAddress(host: "127.0.0.1", port: 9999)]
        for k in 0..<100 {
            let key = Array("key-\(k)".utf8)
            let owner = ring.replicas(for: Token(partitionKey: key), replicationFactor: 1)[0].address
            // RF 1: the owner leads every plan (no rotation over non-replicas).
            for _ in 0..<3 {
                #expect(routing.plan(partitionKey: key, keyspace: "a", nodes: configured).first == owner)
            }
            // RF 3: the plans rotate over all three.
            let leaders = Set(
                (0..<3).compactMap { _ in routing.plan(partitionKey: key, keyspace: "b", nodes: configured).first })
            #expect(leaders.count == 3)
        }
    }

    @Test func repairMessagesRoundTrip() throws {
        for request in [RepairRequest(depth: 0), RepairRequest(depth: 7, progress: true)] {
            let frame = WireMessage.repair(request).frame(streamID: 9)
            #expect(frame.body.count == 2)
            #expect(try WireMessage.decode(frame) == .repair(request))
        }
        var bad = WireMessage.repair(RepairRequest(depth: 3, progress: true)).frame(streamID: 1)
        bad.body[1] = 0x02
        #expect(throws: WireError.self) { try WireMessage.decode(bad) }

        let progress = RepairProgress(
            keyspace: "kv", table: "users", tableIndex: 2, tableCount: 8, rangesDone: 5,
            rangesTotal: 48, rangesDiffering: 2, subrangesStreamed: 6, rowsStreamed: 77,
            overallRangesDone: 53, overallRangesTotal: 384, elapsedMicros: 123_456)
        let pf = WireMessage.repairProgress(progress).frame(streamID: 9)
        #expect(pf.type == .repairProgress && pf.flags.contains(.response))
        #expect(try WireMessage.decode(pf) == .repairProgress(progress))
        #expect(abs(progress.percent - 100 * 53 / 384) < 1e-9)

        let report = RepairReport(
            coordinator: "n1",
            ranges: [
                .init(
                    keyspace: "confab", table: "messages", start: -5, end: 9, replicas: 3, subrangesStreamed: 4,
                    rowsStreamed: 12, elapsedMicros: 99)
            ], elapsedMicros: 1000)
        #expect(
            try WireMessage.decode(WireMessage.repairResponse(report).frame(streamID: 2)) == .repairResponse(report))
        #expect(report.rowsStreamed == 12)

        // Every field is required: a cut body and a trailing byte are clear errors.
        var status = RingStatus(clusterName: "c", replicationFactor: 3, nodes: [])
        status.keyspaces = [.init(name: "confab", replicationFactor: 1)]
        for message in [
            WireMessage.repair(RepairRequest(depth: 4, progress: true)), .repairProgress(progress),
            .repairResponse(report), .statusResponse(status),
        ] {
            let frame = message.frame(streamID: 5)
            for cut in 0..<frame.body.count {
                var short = frame
                short.body = Array(frame.body[0..<cut])
                #expect(throws: WireError.self, "\(message.type) cut at \(cut)") { try WireMessage.decode(short) }
            }
            var long = frame
            long.body.append(0)
            #expect(
                throws: WireError(
                    .protocolError, "malformed \(frame.type.name!): 1 trailing bytes at body offset \(frame.body.count)"
                )
            ) {
                try WireMessage.decode(long)
            }
        }
    }
}

/// Keyspace `confab` at RF 1, `kv` at RF 3 on three in-process nodes: a QUORUM write lands on
/// one node in the first and on all three in the second, which each node's own data shows.
@Suite(.serialized) struct KeyspaceReplicationClusterTests {
    /// `address`'s own data for the slice (a ReplicaRead: no coordinator, no other replica).
    func localRows(_ query: SliceQuery, table: TableSchema, at address: NodeAddress) async throws -> Int {
        let connection = try await NodeConnection.connect(
            to: address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(1),
            requestTimeout: .seconds(5), maxFrameBytes: 1 << 20, clientName: "test")
        defer { Task { await connection.close() } }
        let reply = try await connection.request(
            .replicaRead(ReadRequest(query, schema: table, consistency: .one)),
            timeout: .seconds(5))
        guard case .replicaReadResponse(.data(let data)) = reply else {
            throw ProcessTestError("answered \(reply.type)")
        }
        return data.rows.count
    }

    @Test func quorumWritesReachOneReplicaAtRF1AndThreeAtRF3() async throws {
        func configure(_ c: inout NodeConfiguration, seeds: [NodeAddress]) {
            fastRing(&c, seeds: seeds)
            c.keyspaceReplication = ["confab": 1, "kv": 3]
        }
        let n1 = try await InProcessNode.start { configure(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { configure(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { configure(&$0, seeds: [n1.address]) }
        let nodes = [n1, n2, n3]
        let clients = nodes.map { ConfabClient.forTests(nodes: [$0.address]) }
        for c in clients {
            try await eventually("3 normal nodes") { try await ringIsNormal(c, count: 3) }
        }
        let status = try await clients[0].status()
        #expect(status.replicationFactor(keyspace: "confab") == 1)
        #expect(status.replicationFactor(keyspace: "kv") == 3)

        let schema = TestSchema.registry
        let messages = try schema.resolve(keyspace: "confab", table: "messages")
        let kvTable = try #require(
            schema.tables.first { $0.keyspace == "kv" && $0.clusteringColumns.isEmpty },
            "a kv table without clustering columns")
        let column = try #require(kvTable.columns.keys.min())
        let keys = 12
        for i in 0..<keys {
            // Through every node in turn, so the coordinator is often not a replica.
            let client = clients[i % 3]
            let ackA = try await client.write(
                TestMessages.mutation(
                    chatId: Int64(5000 + i), timestamp: 1, messageId: "m\(i)",
                    sender: "s", body: "rf1", writeTime: 1_700_000_000_000_000),
                consistency: .quorum)
            #expect(ackA.required == 1, "QUORUM of RF 1")
            let row = RowFragment(
                liveness: LivenessInfo(timestamp: 1_700_000_000_000_000),
                cells: [Cell(column: column, timestamp: 1_700_000_000_000_000, value: Array("rf3".utf8))])
            let mutation = Mutation(
                table: kvTable.id, partitionKey: Array("key-\(i)".utf8),
                rows: [.init(clustering: ClusteringKey([.int64(0)]).bytes, fragment: row)])
            let ackB = try await client.write(mutation, consistency: .quorum)
            #expect(ackB.required == 2, "QUORUM of RF 3")
        }
        // Writes to the remaining replicas of RF 3 may still be in flight after the QUORUM answer.
        var holdersA: [Int] = []
        var holdersB: [Int] = []
        try await eventually("every kv row on all three nodes") {
            holdersA = []
            holdersB = []
            for i in 0..<keys {
                var a = 0
                var b = 0
                for n in nodes {
                    a += try await localRows(
                        TestMessages.latest(chatId: Int64(5000 + i)), table: messages, at: n.address)
                    b += try await localRows(
                        SliceQuery(table: kvTable.id, partitionKey: Array("key-\(i)".utf8)),
                        table: kvTable, at: n.address)
                }
                holdersA.append(a)
                holdersB.append(b)
            }
            return holdersB.allSatisfy { $0 == 3 }
        }
        #expect(holdersA == Array(repeating: 1, count: keys), "confab (RF 1) rows per key over the three nodes")
        #expect(holdersB == Array(repeating: 3, count: keys), "kv (RF 3) rows per key over the three nodes")
        print(
            "keyspace RF test: confab.messages copies per key \(holdersA), kv.\(kvTable.name) copies per key \(holdersB)"
        )

        // Repair compares only ranges with two or more replicas: none in `confab`, all in `kv`.
        let report = try await clients[0].repair(at: n1.address, timeout: .seconds(60))
        #expect(!report.ranges.contains { $0.keyspace == "confab" })
        #expect(report.ranges.filter { $0.keyspace == "kv" && $0.table == kvTable.name }.count == 48)
        #expect(report.ranges.allSatisfy { $0.replicas == 3 })

        for c in clients { await c.shutdown() }
        for n in nodes { try await n.stop() }
    }
}
