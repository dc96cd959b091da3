import ConfabEngine
import ConfabRing
import Foundation
import Testing

@testable import ConfabWire

/// Every message once, with values that exercise each optional field.
let sampleMessages: [WireMessage] = {
    let mutation = TestMessages.mutation(
        chatId: 42, timestamp: 1_700_000_000_000_000, messageId: "m-1", sender: "alice",
        body: "hello ✓", writeTime: 1_700_000_000_000_123)
    var withTombstones = Mutation(
        table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: -7),
        header: PartitionHeader(
            deletion: DeletionTime(timestamp: 5, localDeletionTime: 6),
            rangeTombstones: [
                RangeTombstone(start: [1], end: [2], deletion: DeletionTime(timestamp: 7, localDeletionTime: 8))
            ]))
    withTombstones.rows = [
        .init(
            clustering: TestMessages.clustering(timestamp: 1, messageId: "a"),
            fragment: RowFragment(
                liveness: LivenessInfo(timestamp: 10, ttl: 60, expiresAt: 99),
                deletion: DeletionTime(timestamp: 3, localDeletionTime: 4),
                cells: [
                    Cell(column: 0, timestamp: 11, value: [1, 2], ttl: 5, expiresAt: 77),
                    .tombstone(column: 1, timestamp: 12, localDeletionTime: 13),
                ]))
    ]
    let bound = ClusteringBound(ClusteringKey([.int64(99)]), inclusive: false)
    return [
        .hello(Hello(clientName: "test")),
        .hello(Hello(minVersion: 1, maxVersion: 3, clientName: "")),
        .helloAck(HelloAck(version: 1, nodeID: "0d7e", clusterName: "confab")),
        .hello(Hello(clientName: "confab node n1", nodeID: "n1")),
        .helloAck(
            HelloAck(
                version: 2, nodeID: "0d7e", clusterName: "confab", authenticationRequired: true,
                challenge: Array(0..<32))),
        .authenticate(Authenticate(role: .node, clientNonce: Array(repeating: 7, count: 32), mac: Array(100..<132))),
        .authenticate(
            Authenticate(
                role: .operator, clientNonce: Array(repeating: 0, count: 32), mac: Array(repeating: 255, count: 32))),
        .authenticateAck(role: .operator),
        .ping(nonce: 0), .ping(nonce: .max), .pong(nonce: 12345),
        .error(WireError(.unavailable, "consistency QUORUM needs 2 replicas; 1 is alive")),
        .error(WireError(WireError.Code(rawValue: 0x7777), "")),
        .write(WriteRequest(keyspace: "confab", table: "messages", mutation: mutation, consistency: .quorum)),
        .write(WriteRequest(keyspace: "confab", table: "messages", mutation: withTombstones, consistency: .all)),
        .writeAck(WriteAck(acknowledged: 2, required: 2)),
        .read(ReadRequest(keyspace: "confab", table: "messages", partitionKey: [1, 2, 3], consistency: .one)),
        .read(
            ReadRequest(
                keyspace: "confab", table: "messages", partitionKey: [9], lower: bound,
                upper: ClusteringBound(ClusteringKey([.int64(100)]), inclusive: true), reversed: true,
                limit: 50, cursor: [7, 7], consistency: .two, digestOnly: true)),
        .read(
            ReadRequest(
                keyspace: "confab", table: "messages", partitionKey: [9], reversed: true, limit: 64,
                byteLimit: 512 * 1024, consistency: .quorum)),
        .replicaRead(
            ReadRequest(
                keyspace: "confab", table: "messages", partitionKey: [9], lower: bound, limit: 1, cursor: [3],
                byteLimit: .max, consistency: .quorum, digestOnly: true)),
        .readResponse(.rows(ReplicaRows(table: 1, partitionKey: [1], rows: []))),
        .readResponse(
            .rows(
                ReplicaRows(
                    table: 1, partitionKey: withTombstones.partitionKey, header: withTombstones.header,
                    rows: withTombstones.rows, cursor: [1, 2], tombstonesScanned: 3))),
        .readResponse(.digest(.init(high: 0xDEAD_BEEF, low: 1))),
        .status,
        .statusResponse(
            RingStatus(
                clusterName: "confab", replicationFactor: 3,
                nodes: [
                    RingNodeStatus(
                        state: "normal", isUp: true, id: "a", host: "127.0.0.1", port: 7400, loadBytes: 1 << 40,
                        tokens: 2, ownership: 0.75,
                        tokenValues: [.min, 42], generation: 1_733_000_000, quarantinedTables: 2),
                    RingNodeStatus(
                        state: "joining", isUp: false, id: "b", host: "::1", port: 1, loadBytes: 0, tokens: 0,
                        ownership: 0),
                ])),
    ]
}()

@Suite struct WireCodecTests {
    @Test(arguments: sampleMessages.indices)
    func roundTrip(_ index: Int) throws {
        let message = sampleMessages[index]
        let bytes = message.encodedFrame(streamID: UInt32(index + 1))
        guard case .frame(let frame, let length) = FrameDecoder.parse(bytes) else {
            Issue.record("not parsed as a frame")
            return
        }
        #expect(length == bytes.count)
        #expect(frame.streamID == UInt32(index + 1))
        #expect(frame.type == message.type)
        #expect(frame.flags.contains(.response) == message.isResponse)
        #expect(try WireMessage.decode(frame) == message)
    }

    @Test func headerLayoutIsAsDocumented() {
        let bytes = WireMessage.ping(nonce: 0x0102_0304_0506_0708).encodedFrame(streamID: 0xA0B0_C0D0)
        #expect(bytes.count == FrameHeader.size + 8 + FrameHeader.trailerSize)
        #expect(Array(bytes[0..<6]) == [0x43, 0x46, 0x02, 0x03, 0x00, 0x00])
        #expect(Array(bytes[6..<10]) == [0xA0, 0xB0, 0xC0, 0xD0])
        #expect(Array(bytes[10..<14]) == [0, 0, 0, 8])
        let headerCRC = CRC32C.checksum(bytes[0..<14])
        #expect(
            Array(bytes[14..<18]) == [
                UInt8(headerCRC >> 24), UInt8(headerCRC >> 16 & 0xFF), UInt8(headerCRC >> 8 & 0xFF),
                UInt8(headerCRC & 0xFF),
            ])
        #expect(Array(bytes[18..<26]) == [1, 2, 3, 4, 5, 6, 7, 8])
        let bodyCRC = CRC32C.checksum(bytes[18..<26])
        #expect(
            Array(bytes[26..<30]) == [
                UInt8(bodyCRC >> 24), UInt8(bodyCRC >> 16 & 0xFF), UInt8(bodyCRC >> 8 & 0xFF), UInt8(bodyCRC & 0xFF),
            ])
    }

    @Test func twoFramesInOneBuffer() throws {
        let a = WireMessage.ping(nonce: 1).encodedFrame(streamID: 1)
        let b = WireMessage.ping(nonce: 2).encodedFrame(streamID: 2)
        guard case .frame(let f1, let n1) = FrameDecoder.parse(a + b) else {
            Issue.record("first")
            return
        }
        guard case .frame(let f2, _) = FrameDecoder.parse(Array((a + b)[n1...])) else {
            Issue.record("second")
            return
        }
        #expect(try WireMessage.decode(f1) == .ping(nonce: 1))
        #expect(try WireMessage.decode(f2) == .ping(nonce: 2))
    }

    @Test(arguments: sampleMessages.indices)
    func everyTruncationNeedsMoreBytes(_ index: Int) {
        let bytes = sampleMessages[index].encodedFrame(streamID: 9)
        for cut in 0..<bytes.count {
            guard case .needMoreBytes = FrameDecoder.parse(Array(bytes[0..<cut])) else {
                Issue.record("prefix of \(cut) bytes was not 'need more bytes'")
                return
            }
        }
    }

    @Test(arguments: sampleMessages.indices)
    func everyTruncatedBodyIsAClearError(_ index: Int) {
        let frame = sampleMessages[index].frame(streamID: 3)
        for cut in 0..<frame.body.count {
            var short = frame
            short.body = Array(frame.body[0..<cut])
            #expect(throws: WireError.self) { try WireMessage.decode(short) }
        }
        var long = frame
        long.body.append(0)
        #expect(
            throws: WireError(
                .protocolError, "malformed \(frame.type.name!): 1 trailing bytes at body offset \(frame.body.count)")
        ) {
            try WireMessage.decode(long)
        }
    }

    @Test func badBodyChecksumIsDamagedNotFatal() {
        var bytes = WireMessage.ping(nonce: 5).encodedFrame(streamID: 77)
        bytes[FrameHeader.size] ^= 0x01
        guard case .damaged(let id, let error, let length) = FrameDecoder.parse(bytes) else {
            Issue.record("expected damaged")
            return
        }
        #expect(id == 77)
        #expect(length == bytes.count)
        #expect(error.code == .corrupt)
        #expect(error.message.contains("body checksum mismatch"))
    }

    @Test func badHeaderChecksumIsFatal() {
        var bytes = WireMessage.ping(nonce: 5).encodedFrame(streamID: 77)
        bytes[11] ^= 0x40  // body length
        guard case .fatal(_, let error) = FrameDecoder.parse(bytes) else {
            Issue.record("expected fatal")
            return
        }
        #expect(error.code == .corrupt)
        #expect(error.message.contains("header checksum"))
    }

    @Test func badMagicIsFatalFromTheFirstByte() {
        guard case .fatal(let id, let error) = FrameDecoder.parse(Array("GET / HTTP/1.1\r\n".utf8)) else {
            Issue.record("expected fatal")
            return
        }
        #expect(id == 0)
        #expect(error.code == .protocolError)
        #expect(error.message.contains("not a Confab frame"))
        guard case .fatal = FrameDecoder.parse([0x47]) else {
            Issue.record("one byte")
            return
        }
    }

    /// A TLS record where a frame should be (a plain client talking to a TLS node, or the other
    /// way round) says so and what to pass, instead of "is the peer speaking the protocol?".
    @Test func aTLSRecordWhereAFrameShouldBeSaysTLS() {
        for first: UInt8 in [0x15, 0x16] {
            guard case .fatal(_, let error) = FrameDecoder.parse([first, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28]) else {
                Issue.record("expected fatal")
                return
            }
            #expect(error.message.contains("TLS record") && error.message.contains("--tls-ca"), "\(error.message)")
        }
    }

    @Test func unsupportedVersionIsFatal() {
        var frame = WireMessage.ping(nonce: 1).frame(streamID: 4)
        frame.version = 1
        guard case .fatal(let id, let error) = FrameDecoder.parse(frame.encoded()) else {
            Issue.record("expected fatal")
            return
        }
        #expect(id == 4)
        #expect(error.message == "unsupported protocol version 1; this peer speaks version 2")
    }

    @Test func oversizedBodyIsRefusedFromTheHeaderAlone() {
        let header = FrameHeader(type: .write, streamID: 8, bodyLength: UInt32(FrameHeader.defaultMaxBodyBytes + 1))
            .encoded()
        guard case .fatal(let id, let error) = FrameDecoder.parse(header) else {
            Issue.record("expected fatal")
            return
        }
        #expect(id == 8)
        #expect(error.code == .tooLarge)
        #expect(
            error.message
                == "frame body of 67108865 bytes exceeds the limit of 67108864 bytes (64 MiB); split the request")
        let small = WireMessage.ping(nonce: 1).encodedFrame(streamID: 1)
        guard case .fatal(_, let e2) = FrameDecoder.parse(small, maxBodyBytes: 4) else {
            Issue.record("custom limit")
            return
        }
        #expect(e2.code == .tooLarge)
    }

    @Test func unknownFlagsAreDamaged() {
        let frame = Frame(type: .ping, flags: FrameFlags(rawValue: 0x80), streamID: 2, body: [0, 0, 0, 0, 0, 0, 0, 0])
        guard case .damaged(2, let error, _) = FrameDecoder.parse(frame.encoded()) else {
            Issue.record("expected damaged")
            return
        }
        #expect(error.code == .protocolError)
    }

    @Test func unknownAndReservedTypesAreClearErrors() {
        let unknown = Frame(type: MessageType(rawValue: 0x7F), streamID: 1, body: [])
        #expect(throws: WireError(.protocolError, "unknown type 0x7f: not a Confab version 2 message")) {
            try WireMessage.decode(unknown)
        }
        for type in MessageType.reservedInternode {
            let error = #expect(throws: WireError.self) {
                try WireMessage.decode(Frame(type: type, streamID: 1, body: []))
            }
            #expect(error?.message.contains("reserved for internode messages") == true)
        }
        #expect(Set(MessageType.reservedInternode.map(\.rawValue)).count == MessageType.reservedInternode.count)
        #expect(
            Set(MessageType.implemented.map(\.rawValue)).isDisjoint(with: MessageType.reservedInternode.map(\.rawValue))
        )
    }

    @Test func unsupportedConsistencyIsInvalid() {
        var frame = WireMessage.read(
            ReadRequest(keyspace: "confab", table: "messages", partitionKey: [1], consistency: .one)
        )
        .frame(streamID: 1)
        frame.body[0] = 0x03
        #expect(throws: WireError(.invalid, "consistency THREE (0x03) is not supported; use ONE, TWO, QUORUM or ALL")) {
            try WireMessage.decode(frame)
        }
        for level in ConsistencyLevel.allCases { #expect((try? ConsistencyLevel(wireCode: level.wireCode)) == level) }
    }

    @Test func randomBytesNeverCrashTheDecoders() {
        let seed = testSeed()
        var rng = SplitMix64(seed: seed)
        for i in 0..<3000 {
            // Either pure noise, or a valid frame with a few bytes flipped.
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if bytes.count >= 2 {
                    bytes[0] = 0x43
                    bytes[1] = 0x46
                }
            } else {
                bytes = sampleMessages[Int.random(in: 0..<sampleMessages.count, using: &rng)].encodedFrame(streamID: 1)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            _ = FrameDecoder.parse(bytes)
            // Bodies are decoded even when checksums would have caught the damage.
            if bytes.count > FrameHeader.size {
                let frame = Frame(
                    type: MessageType(rawValue: bytes[3]), streamID: 1, body: Array(bytes[FrameHeader.size...]))
                _ = try? WireMessage.decode(frame)
            }
        }
        print("randomBytesNeverCrashTheDecoders seed \(seed)")
    }

    @Test func schemaRegistryResolvesChatMessages() throws {
        let t = try TestSchema.registry.resolve(keyspace: "confab", table: "messages")
        #expect(t.id == TestMessages.table)
        #expect(t.columns[TestMessages.bodyColumn] == "body")
        #expect(
            throws: WireError(
                .notFound,
                "no table confab.users (this node serves: \(TestSchema.registry.tables.map(\.qualifiedName).joined(separator: ", ")))"
            )
        ) {
            try TestSchema.registry.resolve(keyspace: "confab", table: "users")
        }
    }

    @Test func addressParsing() {
        #expect(NodeAddress(hostPort: "127.0.0.1:7400") == NodeAddress(host: "127.0.0.1", port: 7400))
        #expect(NodeAddress(hostPort: "localhost") == NodeAddress(host: "localhost", port: 7400))
        #expect(NodeAddress(hostPort: ":0") == NodeAddress(host: "127.0.0.1", port: 0))
        #expect(NodeAddress(hostPort: "[::1]:9") == NodeAddress(host: "::1", port: 9))
        #expect(NodeAddress(hostPort: "h:99999") == nil)
        #expect(NodeAddress(hostPort: "h:x") == nil)
    }
}
