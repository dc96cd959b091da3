import ConfabNode
import ConfabWire
import Foundation
import Testing

/// The handshake's MAC against answers computed independently (Python's hmac module), and the
/// secret file's creation and permission checks.
@Suite struct ClusterSecretTests {
    let secret = try! ClusterSecret(bytes: Array(0..<32))
    let serverNonce = [UInt8](repeating: 0x11, count: 32)
    let clientNonce = [UInt8](repeating: 0x22, count: 32)

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// python3 -c "import hmac,hashlib; print(hmac.new(bytes(range(32)), b'confab-auth-v2' +
    /// b'\x11'*32 + b'\x22'*32 + b'\x02' + b'\x00\x06node-1', hashlib.sha256).hexdigest())"
    @Test func answerMatchesKnownVectors() {
        let node = secret.answer(serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1")
        #expect(Self.hex(node) == "d2d21c01a71b15df0af05d5adf8ff86fa6b7e40f6596706d35f0f60f9c19f5ad")
        let op = secret.answer(serverNonce: serverNonce, clientNonce: clientNonce, role: .operator, nodeID: "")
        #expect(Self.hex(op) == "b36c9d6d5eb0628c99a06c6344ff211688a1145f03900e5ffba9fabb36c24ad1")
        #expect(secret.verify(node, serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1"))
    }

    /// Each input is bound: changing any of them (or the key) makes the answer fail.
    @Test func verifyRefusesAnyChangedInput() throws {
        let mac = secret.answer(serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1")
        var otherServer = serverNonce
        otherServer[31] ^= 1
        var otherClient = clientNonce
        otherClient[0] ^= 0x80
        var flipped = mac
        flipped[5] ^= 4
        #expect(!secret.verify(mac, serverNonce: otherServer, clientNonce: clientNonce, role: .node, nodeID: "node-1"))
        #expect(!secret.verify(mac, serverNonce: serverNonce, clientNonce: otherClient, role: .node, nodeID: "node-1"))
        #expect(
            !secret.verify(mac, serverNonce: serverNonce, clientNonce: clientNonce, role: .operator, nodeID: "node-1"))
        #expect(!secret.verify(mac, serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-2"))
        #expect(
            !secret.verify(flipped, serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1"))
        #expect(
            !secret.verify(
                Array(mac.prefix(16)), serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1"
            ))
        let other = try ClusterSecret(bytes: Array(repeating: 7, count: 32))
        #expect(!other.verify(mac, serverNonce: serverNonce, clientNonce: clientNonce, role: .node, nodeID: "node-1"))
        #expect(throws: WireError.self) { try ClusterSecret(bytes: Array(0..<31)) }
    }

    /// docs/security.md § Message classes, type by type: a new message type must be placed
    /// deliberately (an unlisted request type fails here instead of defaulting to "client").
    @Test func everyImplementedTypeHasTheDocumentedClass() {
        let client: Set<MessageType> = [.hello, .authenticate, .ping, .write, .read, .status]
        let operatorOnly: Set<MessageType> = [.admin, .repair]
        let node: Set<MessageType> = [
            .gossipSyn, .gossipAck, .gossipAck2, .replicaWrite, .replicaRead, .hintReplay,
            .merkleTreeRequest, .streamRangesRequest, .streamRangesData,
        ]
        let responses: Set<MessageType> = [
            .helloAck, .authenticateAck, .pong, .error, .writeAck, .readResponse, .statusResponse,
            .adminResponse, .repairResponse, .repairProgress, .replicaWriteAck,
            .replicaReadResponse, .hintReplayAck, .merkleTreeResponse, .streamRangesDone,
        ]
        for type in MessageType.implemented + MessageType.reservedInternode {
            #expect(
                [client, operatorOnly, node, responses].filter { $0.contains(type) }.count == 1,
                "\(type) is not classified")
        }
        for type in client.union(responses) { #expect(type.requiredRole == .client, "\(type)") }
        for type in operatorOnly { #expect(type.requiredRole == .operator, "\(type)") }
        for type in node { #expect(type.requiredRole == .node, "\(type)") }
    }

    @Test func createdFileIsPrivateWholeAndNotReplaced() throws {
        let dir = TempDirectory("confab-secret")
        let path = ClusterSecretFile.path(inRingDirectory: dir.path)
        #expect(try ClusterSecretFile.createIfMissing(at: path))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let first = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(first.count == ClusterSecret.size)
        #expect(!(try ClusterSecretFile.createIfMissing(at: path)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == first)
        // No temporary file left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [ClusterSecretFile.fileName])
        let loaded = try ClusterSecretFile.load(path)
        #expect(loaded == (try ClusterSecret(bytes: Array(first))))
    }

    @Test func loadRefusesOpenMalformedOrMissingFiles() throws {
        let dir = TempDirectory("confab-secret")
        let path = "\(dir.path)/secret"
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(Array(0..<32)), attributes: [.posixPermissions: 0o640])
        #expect { try ClusterSecretFile.load(path) } throws: { ($0 as? ClusterSecretFileError)?.code == .tooOpen }
        try FileManager.default.setAttributes([.posixPermissions: 0o604], ofItemAtPath: path)
        #expect { try ClusterSecretFile.load(path) } throws: { ($0 as? ClusterSecretFileError)?.code == .tooOpen }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try ClusterSecretFile.load(path)

        let short = "\(dir.path)/short"
        _ = FileManager.default.createFile(
            atPath: short, contents: Data(Array(0..<31)), attributes: [.posixPermissions: 0o600])
        #expect { try ClusterSecretFile.load(short) } throws: { ($0 as? ClusterSecretFileError)?.code == .malformed }
        let long = "\(dir.path)/long"
        _ = FileManager.default.createFile(
            atPath: long, contents: Data(Array(0..<33)), attributes: [.posixPermissions: 0o600])
        #expect { try ClusterSecretFile.load(long) } throws: { ($0 as? ClusterSecretFileError)?.code == .malformed }
        #expect { try ClusterSecretFile.load("\(dir.path)/absent") } throws: {
            ($0 as? ClusterSecretFileError)?.code == .missing
        }
    }
}
