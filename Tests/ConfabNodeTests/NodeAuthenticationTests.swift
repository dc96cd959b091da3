import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import NIOCore
import Testing

@testable import ConfabNode

/// Issue 12: a connection that has not answered the node's challenge with the cluster secret may
/// only read and write; operators may also run admin requests; only nodes send internode
/// messages. In-process nodes with a secret in their configuration.
@Suite(.serialized) struct NodeAuthenticationTests {
    static let secret = try! ClusterSecret(bytes: Array(repeating: 0x5A, count: 32))

    static func connect(_ address: NodeAddress, credentials: ClusterCredentials? = nil) async throws -> NodeConnection {
        try await NodeConnection.connect(
            to: address, group: .singletonMultiThreadedEventLoopGroup, connectTimeout: .seconds(2),
            requestTimeout: .seconds(10), maxFrameBytes: 1 << 20, clientName: "auth-test",
            credentials: credentials)
    }

    static func secured(_ c: inout NodeConfiguration) { c.clusterSecret = secret }

    static func replicaWrite(chat: Int64, id: String) -> WireMessage {
        .replicaWrite(
            WriteRequest(
                keyspace: "confab", table: "messages",
                mutation: TestMessages.mutation(
                    chatId: chat, timestamp: 1_000, messageId: id, sender: "mallory",
                    body: "forged", writeTime: 1_000_000),
                consistency: .one))
    }

    static func code(_ reply: WireMessage) -> WireError.Code? {
        if case .error(let e) = reply { return e.code }
        return nil
    }

    @Test func clientConnectionMayReadAndWriteButNotSendReplicaWritesOrDecommission() async throws {
        let node = try await InProcessNode.start(configure: Self.secured)
        let raw = try await Self.connect(node.address)
        let client = node.client()

        let write = try await raw.request(Self.replicaWrite(chat: 12, id: "forged"), timeout: .seconds(10))
        #expect(Self.code(write) == .unauthorized, "ReplicaWrite from a client connection: \(write)")
        if case .error(let e) = write { #expect(e.message.contains("internode")) }
        let decommission = try await raw.request(.admin(AdminRequest(operation: .decommission)), timeout: .seconds(10))
        #expect(Self.code(decommission) == .unauthorized, "decommission from a client connection: \(decommission)")
        if case .error(let e) = decommission { #expect(e.message.contains("cluster-secret")) }
        let repair = try await raw.request(.repair(RepairRequest(depth: 4)), timeout: .seconds(10))
        #expect(Self.code(repair) == .unauthorized)
        let stream = try await raw.request(
            .merkleTreeRequest(
                MerkleTreeRequest(
                    keyspace: "confab", table: "messages",
                    range: TokenRange(start: Token(0), end: Token(0)), depth: 2)),
            timeout: .seconds(10))
        #expect(Self.code(stream) == .unauthorized)

        // Nothing changed: the forged row is not there, the node is still a normal member, and the
        // same connection still reads and writes.
        #expect(try await client.history(chatId: 12).isEmpty)
        let status = try await client.status()
        #expect(status.nodes.count == 1 && status.nodes.allSatisfy { $0.state == "normal" })
        let posted = try await client.post(chatId: 13, sender: "alice", text: "hello")
        #expect(try await client.history(chatId: 13).map(\.messageId) == [posted.messageId])
        #expect(try await raw.request(.status, timeout: .seconds(10)).type == .statusResponse)

        await raw.close()
        await client.shutdown()
        try await node.stop()
    }

    @Test func operatorMayRunAdminButNotInternodeMessagesAndNodesMaySendBoth() async throws {
        let node = try await InProcessNode.start(configure: Self.secured)
        let op = try await Self.connect(
            node.address, credentials: ClusterCredentials(secret: Self.secret, role: .operator))
        let flush = try await op.request(.admin(AdminRequest(operation: .flush)), timeout: .seconds(10))
        guard case .adminResponse(let r) = flush else {
            Issue.record("flush as operator: \(flush)")
            return
        }
        #expect(r.results.count == 1 && r.results[0].error == nil)
        let write = try await op.request(Self.replicaWrite(chat: 21, id: "op"), timeout: .seconds(10))
        #expect(Self.code(write) == .forbidden, "ReplicaWrite from an operator: \(write)")

        let peer = try await Self.connect(
            node.address, credentials: ClusterCredentials(secret: Self.secret, role: .node, nodeID: "peer-1"))
        #expect(
            try await peer.request(Self.replicaWrite(chat: 22, id: "peer"), timeout: .seconds(10)) == .replicaWriteAck)
        let client = node.client()
        #expect(try await client.history(chatId: 22, consistency: .one).map(\.messageId) == ["peer"])
        #expect(try await client.history(chatId: 21, consistency: .one).isEmpty)

        // A node's gossip must come from the node it authenticated as.
        let forged = GossipMessage(
            clusterName: "confab", from: NodeID(id: "someone-else", address: NodeAddress(host: "127.0.0.1", port: 1)),
            payload: .syn(digests: []))
        let gossip = try await peer.request(.gossip(forged), timeout: .seconds(10))
        #expect(Self.code(gossip) == .forbidden, "gossip claiming another node's id: \(gossip)")

        await op.close()
        await peer.close()
        await client.shutdown()
        try await node.stop()
    }

    @Test func wrongSecretAndNodeIDMismatchAreRefused() async throws {
        let node = try await InProcessNode.start(configure: Self.secured)
        let wrong = try ClusterSecret(bytes: Array(repeating: 0xA5, count: 32))
        await #expect {
            _ = try await Self.connect(node.address, credentials: ClusterCredentials(secret: wrong, role: .operator))
        } throws: { ($0 as? WireError)?.code == .unauthorized }
        await #expect {
            _ = try await Self.connect(
                node.address, credentials: ClusterCredentials(secret: wrong, role: .node, nodeID: "n"))
        } throws: { ($0 as? WireError)?.code == .unauthorized }

        // Hello names node A; the answer is computed (with the right secret) for node B.
        let socket = try RawSocket(port: node.address.port)
        var reader = FrameReader(socket: socket)
        socket.send(WireMessage.hello(Hello(clientName: "raw", nodeID: "node-A")).encodedFrame(streamID: 1))
        guard case .helloAck(let ack) = try await reader.next() else {
            Issue.record("no HelloAck")
            return
        }
        #expect(ack.authenticationRequired)
        let nonce = [UInt8](repeating: 3, count: 32)
        let mac = Self.secret.answer(serverNonce: ack.challenge, clientNonce: nonce, role: .node, nodeID: "node-B")
        socket.send(
            WireMessage.authenticate(Authenticate(role: .node, clientNonce: nonce, mac: mac)).encodedFrame(streamID: 2))
        let refused = try await reader.next()
        #expect(Self.code(refused) == .unauthorized, "answer for another node id: \(refused)")
        #expect(await socket.isClosedByPeer())

        // A node may not authenticate without naming itself in Hello.
        let anonymous = try RawSocket(port: node.address.port)
        var anonymousReader = FrameReader(socket: anonymous)
        anonymous.send(WireMessage.hello(Hello(clientName: "raw")).encodedFrame(streamID: 1))
        guard case .helloAck(let ack2) = try await anonymousReader.next() else {
            Issue.record("no HelloAck")
            return
        }
        let mac2 = Self.secret.answer(serverNonce: ack2.challenge, clientNonce: nonce, role: .node, nodeID: "")
        anonymous.send(
            WireMessage.authenticate(Authenticate(role: .node, clientNonce: nonce, mac: mac2)).encodedFrame(streamID: 2)
        )
        #expect(Self.code(try await anonymousReader.next()) == .unauthorized)
        try await node.stop()
    }

    /// An Authenticate captured from one connection (a valid answer there) is refused on another:
    /// the other connection's challenge differs.
    @Test func replayedAnswerOnANewConnectionIsRefused() async throws {
        let node = try await InProcessNode.start(configure: Self.secured)
        let first = try RawSocket(port: node.address.port)
        var firstReader = FrameReader(socket: first)
        let hello = WireMessage.hello(Hello(clientName: "raw", nodeID: "node-R")).encodedFrame(streamID: 1)
        first.send(hello)
        guard case .helloAck(let ack) = try await firstReader.next() else {
            Issue.record("no HelloAck")
            return
        }
        let nonce = [UInt8](repeating: 9, count: 32)
        let answer = WireMessage.authenticate(
            Authenticate(
                role: .node, clientNonce: nonce,
                mac: Self.secret.answer(serverNonce: ack.challenge, clientNonce: nonce, role: .node, nodeID: "node-R"))
        )
        .encodedFrame(streamID: 2)
        first.send(answer)
        #expect(try await firstReader.next() == .authenticateAck(role: .node))
        // The same bytes again on the same connection are refused too (one answer per challenge).
        first.send(answer)
        #expect(Self.code(try await firstReader.next()) == .unauthorized)

        let second = try RawSocket(port: node.address.port)
        var secondReader = FrameReader(socket: second)
        second.send(hello)
        guard case .helloAck(let ack2) = try await secondReader.next() else {
            Issue.record("no HelloAck")
            return
        }
        #expect(ack2.challenge != ack.challenge)
        second.send(answer)
        let replayed = try await secondReader.next()
        #expect(Self.code(replayed) == .unauthorized, "replayed answer: \(replayed)")
        #expect(await second.isClosedByPeer())

        // A third connection that replays and then sends a ReplicaWrite without waiting: refused,
        // and the row is not written.
        let third = try RawSocket(port: node.address.port)
        var thirdReader = FrameReader(socket: third)
        third.send(hello + answer + Self.replicaWrite(chat: 31, id: "replayed").encodedFrame(streamID: 3))
        guard case .helloAck = try await thirdReader.next() else {
            Issue.record("no HelloAck")
            return
        }
        #expect(Self.code(try await thirdReader.next()) == .unauthorized)
        #expect(
            await third.isClosedByPeer(), "the connection closes after a failed answer, before reading the ReplicaWrite"
        )
        let client = node.client()
        #expect(try await client.history(chatId: 31, consistency: .one).isEmpty)
        await client.shutdown()
        try await node.stop()
    }

    /// Nodes that share the secret authenticate to each other: the ring forms and QUORUM writes
    /// (replica writes between nodes) succeed.
    @Test func ringOfSecuredNodesForms() async throws {
        let n1 = try await InProcessNode.start {
            fastRing(&$0, seeds: [])
            $0.replicationFactor = 2
            Self.secured(&$0)
        }
        let n2 = try await InProcessNode.start {
            fastRing(&$0, seeds: [n1.address])
            $0.replicationFactor = 2
            Self.secured(&$0)
        }
        let c1 = ConfabClient.forTests(nodes: [n1.address])
        let c2 = ConfabClient.forTests(nodes: [n2.address])
        try await eventually("2 normal nodes seen by n1") { try await ringIsNormal(c1, count: 2) }
        try await eventually("2 normal nodes seen by n2") { try await ringIsNormal(c2, count: 2) }
        let m = try await c1.post(chatId: 41, sender: "a", text: "both", consistency: .all)
        #expect(try await c2.history(chatId: 41, consistency: .all).map(\.messageId) == [m.messageId])
        await c1.shutdown()
        await c2.shutdown()
        try await n2.stop()
        try await n1.stop()
    }
}

/// Reads whole frames off a raw socket.
struct FrameReader {
    let socket: RawSocket
    var buffer: [UInt8] = []

    init(socket: RawSocket) { self.socket = socket }

    mutating func next() async throws -> WireMessage {
        while true {
            let result = buffer.withUnsafeBytes { FrameDecoder.parse($0) }
            switch result {
            case .frame(let frame, let length):
                buffer.removeFirst(length)
                return try WireMessage.decode(frame)
            case .needMoreBytes:
                let more = await socket.receive(atLeast: 1)
                if more.isEmpty { throw WireError(.protocolError, "connection closed before a whole frame") }
                buffer += more
            case .damaged(_, let error, _), .fatal(_, let error):
                throw error
            }
        }
    }
}
