import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

@testable import ConfabNode

/// Issue 12: optional TLS on the node protocol. Two nodes serving TLS replicate to each other
/// over it (ALL writes and reads need both), a client trusting their CA reads and writes, and a
/// plain client or one trusting another CA gets nothing; a node with a TLS file it cannot use
/// refuses to start.
@Suite(.serialized) struct NodeTLSTests {
    private func client(_ nodes: [NodeAddress], tls: NodeTLS?) -> ConfabClient {
        var c = ConfabClient.Configuration(nodes: nodes)
        c.schema = TestSchema.registry
        c.requestTimeout = .seconds(10)
        c.connectTimeout = .seconds(2)
        c.routing = FixedOrder()
        c.tls = tls
        return ConfabClient(configuration: c)
    }

    @Test func nodesServingTLSReplicateOverItAndOnlyTrustingClientsGetIn() async throws {
        let temp = TempDirectory("confab-tls")
        let certificates = try await TestCertificates.make(in: temp.path)
        let other = try await TestCertificates.make(in: temp.path, name: "other")
        let settings = NodeTLS(
            certificateChainPath: certificates.certificatePath, privateKeyPath: certificates.keyPath,
            trustRootsPath: certificates.caPath)
        func configure(_ c: inout NodeConfiguration, seeds: [NodeAddress]) {
            fastRing(&c, seeds: seeds)
            c.replicationFactor = 2
            c.tls = settings
        }
        let n1 = try await InProcessNode.start { configure(&$0, seeds: []) }
        let n2 = try await InProcessNode.start { configure(&$0, seeds: [n1.address]) }
        let trusting = client([n1.address, n2.address], tls: NodeTLS(trustRootsPath: certificates.caPath))
        try await eventually("two normal nodes, gossiping over TLS") { try await ringIsNormal(trusting, count: 2) }
        let posted = try await trusting.post(chatId: 91, sender: "tia", text: "over tls", consistency: .all)
        let read = try await trusting.history(chatId: 91, consistency: .all)
        #expect(read.map(\.messageId) == [posted.messageId])

        let plain = client([n1.address], tls: nil)
        await #expect(throws: (any Error).self, "a plain-TCP client was answered by a TLS node") {
            _ = try await plain.history(chatId: 91, consistency: .one)
        }
        let stranger = client([n1.address], tls: NodeTLS(trustRootsPath: other.caPath))
        await #expect(throws: (any Error).self, "a client trusting another CA accepted the node") {
            _ = try await stranger.history(chatId: 91, consistency: .one)
        }
        for c in [trusting, plain, stranger] { await c.shutdown() }
        try await n2.stop()
        try await n1.stop()
    }

    @Test func aNodeWithATLSFileItCannotUseRefusesToStart() async throws {
        let temp = TempDirectory("confab-tls-bad")
        let certificates = try await TestCertificates.make(in: temp.path)
        try "not a key\n".write(toFile: "\(temp.path)/bad.key", atomically: true, encoding: .utf8)
        await #expect {
            _ = try await InProcessNode.start {
                $0.tls = NodeTLS(
                    certificateChainPath: certificates.certificatePath, privateKeyPath: "\(temp.path)/bad.key",
                    trustRootsPath: certificates.caPath)
            }
        } throws: { error in
            guard let e = error as? NodeError else { return false }
            return e.code == .invalidConfiguration && e.message.contains("bad.key")
        }
    }
}
