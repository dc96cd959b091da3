import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabRing
import ConfabWire
import Foundation
import Testing

@Suite(.serialized) struct NodeServerTests {
    @Test func writeThenReadBack() async throws {
        let node = try await InProcessNode.start()
        let client = node.client()
        let posted = try await client.post(chatId: 7, sender: "alice", text: "first", timestamp: 1_000)
        try await client.post(chatId: 7, sender: "bob", text: "second", timestamp: 2_000, consistency: .all)
        try await client.post(chatId: 8, sender: "carol", text: "elsewhere", timestamp: 1_500, consistency: .one)
        let history = try await client.history(chatId: 7)
        #expect(history.map(\.text) == ["second", "first"])
        #expect(history.last == posted)
        #expect(try await client.history(chatId: 7, limit: 1).map(\.text) == ["second"])
        #expect(try await client.history(chatId: 7, before: 2_000).map(\.text) == ["first"])
        #expect(try await client.history(chatId: 7, after: 1_000).map(\.text) == ["second"])
        #expect(try await client.history(chatId: 9).isEmpty)
        // Raw rows carry cell timestamps.
        let rows = try await client.read(TestMessages.latest(chatId: 7))
        #expect(rows.rows.count == 2)
        #expect(rows.rows.allSatisfy { $0.fragment.cells.allSatisfy { $0.timestamp > 0 } })
        #expect(try await client.ping() == node.node.nodeID)
        await client.shutdown()
        try await node.stop()
    }

    @Test func hundredConcurrentRequestsOnOneConnection() async throws {
        let node = try await InProcessNode.start { $0.maxInFlightPerConnection = 16 }
        let client = node.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask {
                    if i % 2 == 0 {
                        try await client.post(
                            chatId: 1, sender: "u\(i)", text: "message \(i)", messageId: "id-\(i)",
                            timestamp: Int64(i))
                    } else {
                        _ = try await client.history(chatId: 1, limit: 10)
                    }
                }
            }
            try await group.waitForAll()
        }
        let all = try await client.history(chatId: 1, limit: 1000)
        #expect(all.count == 50)
        #expect(all.map(\.timestamp) == stride(from: 98, through: 0, by: -2).map(Int64.init))
        await client.shutdown()
        try await node.stop()
    }

    @Test func damagedFrameGetsAnErrorAndTheConnectionStays() async throws {
        let node = try await InProcessNode.start()
        let socket = try RawSocket(port: node.address.port)
        var bad = WireMessage.ping(nonce: 1).encodedFrame(streamID: 5)
        bad[FrameHeader.size + 2] ^= 0xFF  // body CRC no longer matches
        socket.send(bad)
        let unknownType = Frame(type: MessageType(rawValue: 0x7E), streamID: 6, body: []).encoded()
        socket.send(unknownType)
        let reserved = Frame(type: .streamRangesData, streamID: 7, body: []).encoded()
        socket.send(reserved)
        let garbledBody = Frame(type: .write, streamID: 8, body: [0x04, 0xFF]).encoded()
        socket.send(garbledBody)
        socket.send(WireMessage.ping(nonce: 99).encodedFrame(streamID: 9))

        var replies: [UInt32: WireMessage] = [:]
        var buffer: [UInt8] = []
        while replies.count < 5 {
            let more = await socket.receive(atLeast: 1)
            if more.isEmpty { break }
            buffer += more
            while case .frame(let f, let n) = FrameDecoder.parse(buffer) {
                replies[f.streamID] = try WireMessage.decode(f)
                buffer.removeFirst(n)
            }
        }
        guard case .error(let e5) = replies[5], case .error(let e6) = replies[6], case .error(let e7) = replies[7],
            case .error(let e8) = replies[8]
        else {
            Issue.record("expected errors, got \(replies)")
            return
        }
        #expect(e5.code == .corrupt)
        #expect(e6.code == .protocolError && e6.message.contains("0x7e"))
        #expect(e7.message.contains("reserved for internode"))
        #expect(e8.code == .protocolError)
        #expect(replies[9] == .pong(nonce: 99))
        try await node.stop()
    }

    @Test func garbageOrOversizedFramesAreRefusedAndTheServerStaysUp() async throws {
        let node = try await InProcessNode.start { $0.maxFrameBytes = 1 << 20 }
        do {
            let socket = try RawSocket(port: node.address.port)
            socket.send(FrameHeader(type: .write, streamID: 3, bodyLength: 2 << 20).encoded())
            let reply = await socket.receive(atLeast: FrameHeader.size + FrameHeader.trailerSize)
            guard case .frame(let f, _) = FrameDecoder.parse(reply), case .error(let e) = try WireMessage.decode(f)
            else {
                Issue.record("expected an Error frame")
                return
            }
            #expect(f.streamID == 3)
            #expect(e.code == .tooLarge)
            #expect(e.message.contains("exceeds the limit of 1048576 bytes (1 MiB)"))
            #expect(await socket.isClosedByPeer())
        }
        do {
            let socket = try RawSocket(port: node.address.port)
            socket.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let reply = await socket.receive(atLeast: FrameHeader.size)
            guard case .frame(let f, _) = FrameDecoder.parse(reply), case .error(let e) = try WireMessage.decode(f)
            else {
                Issue.record("expected an Error frame")
                return
            }
            #expect(e.message.contains("not a Confab frame"))
            #expect(await socket.isClosedByPeer())
        }
        // The client refuses an oversized request itself, with a clear error.
        let client = node.client()
        let big = String(repeating: "x", count: 2 << 20)
        var config = ConfabClient.Configuration(nodes: [node.address])
        config.schema = TestSchema.registry
        config.maxFrameBytes = 1 << 20
        let limited = ConfabClient(configuration: config)
        let error = await #expect(throws: ConfabClientError.self) {
            try await limited.post(chatId: 1, sender: "a", text: big)
        }
        #expect(error?.message.contains("exceeds the 1048576-byte frame limit") == true)
        // A client without that limit sends it; the node answers tooLarge and closes that connection.
        let nodeError = await #expect(throws: (any Error).self) {
            try await client.post(chatId: 1, sender: "a", text: big)
        }
        #expect("\(nodeError!)".contains("exceeds the limit of 1048576 bytes"))
        // Still serving.
        let fresh = node.client()
        try await fresh.post(chatId: 1, sender: "a", text: "small")
        #expect(try await fresh.history(chatId: 1).count == 1)
        await client.shutdown()
        await limited.shutdown()
        await fresh.shutdown()
        try await node.stop()
    }

    @Test func requestErrorsAreClear() async throws {
        let node = try await InProcessNode.start()
        let client = node.client()
        let wrongTable = Mutation(table: 99, partitionKey: [1])
        let e1 = await #expect(throws: WireError.self) { try await client.write(wrongTable) }
        #expect(e1?.code == .notFound)
        // Raw request naming an unknown table.
        let socket = try RawSocket(port: node.address.port)
        socket.send(
            WireMessage.read(ReadRequest(keyspace: "confab", table: "users", partitionKey: [1], consistency: .one))
                .encodedFrame(streamID: 1))
        socket.send(
            WireMessage.read(
                ReadRequest(
                    keyspace: "confab", table: "messages", partitionKey: [1], limit: 0,
                    consistency: .one)
            ).encodedFrame(streamID: 2))
        var buffer = await socket.receive(atLeast: 1)
        var errors: [UInt32: WireError] = [:]
        while errors.count < 2 {
            if case .frame(let f, let n) = FrameDecoder.parse(buffer) {
                if case .error(let e) = try WireMessage.decode(f) { errors[f.streamID] = e }
                buffer.removeFirst(n)
            } else {
                let more = await socket.receive(atLeast: 1)
                if more.isEmpty { break }
                buffer += more
            }
        }
        #expect(
            errors[1]
                == WireError(
                    .notFound,
                    "no table confab.users (this node serves: \(TestSchema.registry.tables.map(\.qualifiedName).joined(separator: ", ")))"
                ))
        #expect(errors[2] == WireError(.invalid, "limit must be at least 1"))
        await client.shutdown()
        try await node.stop()
    }

    @Test func noNodeReachableNamesTheAddressesAndFallsBack() async throws {
        // Port 1: nothing listens there (and unprivileged tests cannot bind it).
        let dead = NodeAddress(host: "127.0.0.1", port: 1)
        let unreachable = ConfabClient(nodes: [dead], schema: TestSchema.registry)
        let error = await #expect(throws: ConfabClientError.self) { try await unreachable.history(chatId: 1) }
        #expect(error?.code == .noNodeReachable)
        #expect(error?.message == "no node reachable at 127.0.0.1:1; is `confab node` running?")

        let node = try await InProcessNode.start()
        var config = ConfabClient.Configuration(nodes: [dead, node.address])
        config.schema = TestSchema.registry
        config.routing = FixedOrder()
        let fallback = ConfabClient(configuration: config)
        try await fallback.post(chatId: 3, sender: "a", text: "via the second node")
        #expect(try await fallback.history(chatId: 3).count == 1)
        await fallback.shutdown()
        try await node.stop()
    }

    /// `submitWrite` and `submitRead` (the callback API a load generator uses): the first write
    /// opens the connection through the async path, the 299 submitted after it at once are written
    /// straight onto the open connection; every write is acknowledged and read back.
    @Test func submittedWritesAndReadsRoundTrip() async throws {
        let node = try await InProcessNode.start()
        let client = node.client()
        let write = { (i: Int) in
            client.submitWrite(
                TestMessages.mutation(
                    chatId: Int64(i % 3), timestamp: Int64(1_000 + i), messageId: "m\(i)", sender: "s",
                    body: "body \(i)", writeTime: 1_000))
        }
        _ = try await write(0).get()
        let futures = (1..<300).map(write)
        for f in futures { _ = try await f.get() }
        for chat in 0..<3 {
            let rows = try await client.submitRead(TestMessages.latest(chatId: Int64(chat), limit: 200)).get()
            #expect(rows.rows.count == 100)
        }
        let unknown = await #expect(throws: (any Error).self) {
            try await client.submitRead(SliceQuery(table: 999, partitionKey: [1], limit: 1)).get()
        }
        #expect(unknown.map { "\($0)" }?.contains("999") == true)
        await client.shutdown()
        try await node.stop()
    }

    /// A submitted write is retried on the next node, as `write` is, both when its first node
    /// answers with an error another node may not repeat (here `unavailable`: that node alone
    /// holds a keyspace of replication factor 3, so it can never make a QUORUM) over an open
    /// connection, and when that node has gone away.
    @Test func aSubmittedWriteMovesOnToTheNextNode() async throws {
        let first = try await InProcessNode.start { $0.replicationFactor = 3 }
        let second = try await InProcessNode.start()
        var config = ConfabClient.Configuration(nodes: [first.address, second.address])
        config.schema = TestSchema.registry
        config.routing = FixedOrder()
        config.connectionsPerNode = 1
        let client = ConfabClient(configuration: config)
        let message = { (i: Int) in
            TestMessages.mutation(
                chatId: 4, timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: "b", writeTime: 1)
        }
        // The first opens the connection to `first` (the async path); the rest find it open.
        for i in 1...20 { _ = try await client.submitWrite(message(i)).get() }
        try await first.stop()
        _ = try await client.submitWrite(message(21)).get()
        let reader = second.client()
        let onSecond = try await reader.history(chatId: 4, limit: 100)
        #expect(onSecond.map(\.timestamp) == (1...21).reversed().map(Int64.init))
        await reader.shutdown()
        await client.shutdown()
        try await second.stop()
    }

    @Test func gracefulShutdownKeepsDataAndRestartServesIt() async throws {
        let dir = TempDirectory()
        let first = try await InProcessNode.start(directory: dir)
        let client = first.client()
        for i in 0..<20 { try await client.post(chatId: 5, sender: "s", text: "m\(i)", timestamp: Int64(i)) }
        let id = first.node.nodeID
        await client.shutdown()
        try await first.stop()
        let stopped = await #expect(throws: ConfabClientError.self) {
            try await first.client(timeout: .seconds(1)).history(chatId: 5)
        }
        #expect(stopped?.code == .noNodeReachable)

        let second = try await InProcessNode.start(directory: dir)
        #expect(second.node.nodeID == id)
        let again = second.client()
        #expect(try await again.history(chatId: 5, limit: 100).count == 20)
        await again.shutdown()
        try await second.stop()
    }
}

/// Tries nodes in the order given.
struct FixedOrder: RoutingPolicy {
    func plan(partitionKey: [UInt8]?, nodes: [NodeAddress]) -> [NodeAddress] { nodes }
}
