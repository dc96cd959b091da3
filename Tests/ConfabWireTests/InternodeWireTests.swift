import ConfabEngine
import ConfabRing
import Foundation
import Testing

@testable import ConfabWire

/// Every internode message once, with values that exercise each field.
let internodeSamples: [WireMessage] = {
    let a = NodeID(id: "a1", host: "127.0.0.1", port: 7400)
    let b = NodeID(id: "b2", host: "::1", port: 65535)
    let state = EndpointState(
        node: a, heartbeat: HeartbeatState(generation: 1_700_000_000, version: 42),
        applicationStates: [
            .status: VersionedValue("NORMAL", version: 3),
            .tokens: VersionedValue("-5,17,9223372036854775807", version: 2),
            .load: VersionedValue("123456", version: 41),
            ApplicationStateKey(rawValue: "X-NEW"): VersionedValue("", version: 1),
        ])
    let mutation = TestMessages.mutation(
        chatId: 42, timestamp: 1, messageId: "m", sender: "s", body: "b ✓", writeTime: 7)
    let tombstoned = RowFragment(
        deletion: DeletionTime(timestamp: 9, localDeletionTime: 10),
        cells: [.tombstone(column: 1, timestamp: 8, localDeletionTime: 9)])
    let result = ReplicaReadResult(
        header: PartitionHeader(
            deletion: DeletionTime(timestamp: 1, localDeletionTime: 2),
            rangeTombstones: [
                RangeTombstone(start: [1], end: nil, deletion: DeletionTime(timestamp: 3, localDeletionTime: 4))
            ]),
        rows: mutation.rows + [
            .init(clustering: TestMessages.clustering(timestamp: 0, messageId: "z"), fragment: tombstoned)
        ])
    let request = ReadRequest(
        keyspace: "confab", table: "messages", partitionKey: [0, 0, 0, 0, 0, 0, 0, 42], reversed: true,
        limit: 50, consistency: .one, digestOnly: true)
    return [
        .gossip(GossipMessage(clusterName: "confab", from: a, payload: .syn(digests: []))),
        .gossip(
            GossipMessage(
                clusterName: "c", from: b,
                payload: .syn(digests: [
                    GossipDigest(node: a, generation: 5, maxVersion: 9),
                    GossipDigest(node: b, generation: -1, maxVersion: .max),
                ]))),
        .gossip(
            GossipMessage(
                clusterName: "confab", from: a,
                payload: .ack(
                    requests: [GossipDigest(node: b, generation: 5, maxVersion: 0)], states: [state]))),
        .gossip(
            GossipMessage(
                clusterName: "confab", from: b,
                payload: .ack2(states: [
                    state, EndpointState(node: b, heartbeat: HeartbeatState(generation: 0, version: 0)),
                ]))),
        .replicaWrite(WriteRequest(keyspace: "confab", table: "messages", mutation: mutation, consistency: .one)),
        .replicaWriteAck,
        .replicaRead(request),
        .replicaReadResponse(.data(result)),
        .replicaReadResponse(.data(ReplicaReadResult())),
        .replicaReadResponse(.digest(result.digest())),
        .hintReplay(HintReplay(id: .max, mutation: mutation)),
        .hintReplayAck(id: 7),
    ]
}()

@Suite struct InternodeWireTests {
    @Test(arguments: internodeSamples.indices)
    func roundTrip(_ index: Int) throws {
        let message = internodeSamples[index]
        let bytes = message.encodedFrame(streamID: 3)
        guard case .frame(let frame, let length) = FrameDecoder.parse(bytes) else {
            Issue.record("not parsed as a frame")
            return
        }
        #expect(length == bytes.count)
        #expect(frame.type == message.type)
        #expect(MessageType.implemented.contains(frame.type))
        #expect(frame.flags.contains(.response) == message.isResponse)
        #expect(try WireMessage.decode(frame) == message)
    }

    @Test func gossipIsOneWayAndTypedByPayload() {
        #expect(internodeSamples[0].type == .gossipSyn && internodeSamples[0].isOneWay)
        #expect(internodeSamples[2].type == .gossipAck && internodeSamples[3].type == .gossipAck2)
        #expect(
            !WireMessage.replicaWrite(
                WriteRequest(
                    keyspace: "", table: "", mutation: Mutation(table: 1, partitionKey: [1]),
                    consistency: .one)
            ).isOneWay)
    }

    @Test func synLayoutIsAsDocumented() {
        let a = NodeID(id: "n", host: "h", port: 0x1F40)
        let body = WireMessage.gossip(
            GossipMessage(
                clusterName: "c", from: a,
                payload: .syn(digests: [
                    GossipDigest(node: a, generation: 2, maxVersion: 3)
                ]))
        ).encodedBody()
        let node: [UInt8] = [0, 1, 0x6E, 0, 1, 0x68, 0x1F, 0x40]
        let expected: [UInt8] =
            [0, 1, 0x63] + node + [0, 0, 0, 1] + node + [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 3]
        #expect(body == expected)
    }

    /// The replica computes the digest with ConfabRing's function, so a coordinator compares a
    /// digest answer with `digest()` of a data answer: both must survive the wire unchanged.
    @Test func replicaDigestMatchesTheRingsDigestOfTheDecodedData() throws {
        guard case .replicaReadResponse(.data(let result)) = internodeSamples[7] else {
            Issue.record("sample")
            return
        }
        let decoded = try WireMessage.decode(internodeSamples[7].frame(streamID: 1))
        guard case .replicaReadResponse(.data(let back)) = decoded else {
            Issue.record("decoded")
            return
        }
        #expect(back.digest() == result.digest())
        // Order of rows on the wire does not change the digest (it is over the normalized form).
        let shuffled = ReplicaReadResult(header: result.header, rows: result.rows.reversed())
        #expect(shuffled.digest() == result.digest())
    }

    @Test func malformedBodiesAreClearErrors() {
        for message in internodeSamples {
            let body = message.encodedBody()
            // Every strict prefix is truncated; a trailing byte is extra.
            for cut in stride(from: 0, to: body.count, by: max(1, body.count / 7)) where !body.isEmpty {
                let frame = Frame(type: message.type, streamID: 1, body: Array(body[..<cut]))
                let error = #expect(throws: WireError.self) { try WireMessage.decode(frame) }
                #expect(error?.code == .protocolError)
            }
            let error = #expect(throws: WireError.self) {
                try WireMessage.decode(Frame(type: message.type, streamID: 1, body: body + [0]))
            }
            #expect(error?.message.contains("trailing") == true)
        }
        // Implausible counts are refused before any allocation.
        let huge: [UInt8] = [0, 1, 0x63, 0, 1, 0x6E, 0, 1, 0x68, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]
        let e = #expect(throws: WireError.self) {
            try WireMessage.decode(Frame(type: .gossipSyn, streamID: 1, body: huge))
        }
        #expect(e?.message.contains("implausible digest count") == true)
        let kind = #expect(throws: WireError.self) {
            try WireMessage.decode(Frame(type: .replicaReadResponse, streamID: 1, body: [9]))
        }
        #expect(kind?.message.contains("unknown response kind 9") == true)
    }
}
