import ConfabClient
import ConfabEngine
import ConfabNode
import ConfabProcess
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Testing

/// Issue 12 with real processes: `confab ring start` creates the ring's cluster secret (0600) and
/// its nodes use it; a plain client connection (no secret) sending a ReplicaWrite or a
/// decommission is refused and nothing changes; operator commands authenticate from the ring
/// directory; a node refuses a world-readable secret or none at all.
@Suite(.serialized) struct NodeAuthProcessTests {
    func confab(_ binary: String, _ args: [String]) async throws -> TestCommand {
        try await runConfab(binary, args)
    }

    @Test func plainClientConnectionCannotWriteReplicasOrDecommissionARing() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let temp = TempDirectory("confab-auth-proc")
        let dir = "\(temp.path)/ring"
        defer {
            if let state = try? RingFile.load(from: dir) {
                for node in state.nodes where node.isAlive { node.process?.send(SIGKILL) }
                _ = ServerProcess.waitForExit(state.nodes.compactMap(\.process), timeout: .seconds(5))
            }
        }
        let start = try await confab(binary, ["ring", "start", "--nodes", "3", "--dir", dir, "--timeout", "60"])
        try #require(start.status == 0, "ring start failed: \(start.err)")

        // The secret: 32 bytes, mode 0600, and every node was started with it.
        let secretPath = ClusterSecretFile.path(inRingDirectory: dir)
        let attributes = try FileManager.default.attributesOfItem(atPath: secretPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 32)
        let state = try #require(try RingFile.load(from: dir))
        let addresses = state.nodes.map(\.address)
        #expect(addresses.count == 3)
        for node in state.nodes {
            let log = (try? String(contentsOfFile: node.log, encoding: .utf8)) ?? ""
            #expect(
                log.contains("--cluster-secret-file \(secretPath)"),
                "node \(node.index) was not started with the secret")
        }

        // A raw client connection, without the secret.
        let raw = try await NodeConnection.connect(
            to: addresses[0], group: .singletonMultiThreadedEventLoopGroup,
            connectTimeout: .seconds(2), requestTimeout: .seconds(10),
            maxFrameBytes: 1 << 20, clientName: "mallory")
        let chat: Int64 = 1212
        let forgedRow = TestMessages.mutation(
            chatId: chat, timestamp: 5, messageId: "forged", sender: "mallory", body: "x",
            writeTime: 5_000_000)
        let write = try await raw.request(
            .replicaWrite(
                WriteRequest(
                    keyspace: "confab", table: "messages", mutation: forgedRow,
                    consistency: .one)), timeout: .seconds(10))
        guard case .error(let writeError) = write else {
            Issue.record("ReplicaWrite was answered \(write)")
            return
        }
        #expect(writeError.code == .unauthorized)
        let decommission = try await raw.request(.admin(AdminRequest(operation: .decommission)), timeout: .seconds(10))
        guard case .error(let decommissionError) = decommission else {
            Issue.record("decommission was answered \(decommission)")
            return
        }
        #expect(decommissionError.code == .unauthorized)
        #expect(decommissionError.message.contains("cluster-secret"))
        await raw.close()

        // Nothing changed: no node has the row, and ring status still shows three normal nodes.
        for address in addresses {
            let one = ConfabClient.forTests(nodes: [address])
            #expect(try await one.history(chatId: chat, consistency: .one).isEmpty, "\(address) holds the forged row")
            await one.shutdown()
        }
        let status = try await confab(binary, ["ring", "status", "--dir", dir])
        #expect(status.status == 0, "ring status: \(status.err)")
        #expect(status.out.components(separatedBy: "UN  127.0.0.1:").count - 1 == 3, "ring status:\n\(status.out)")
        for node in state.nodes { #expect(node.isAlive, "node \(node.index) is gone") }

        // Operator commands authenticate with the ring directory's secret …
        let flush = try await confab(binary, ["flush", "--dir", dir])
        #expect(flush.status == 0, "flush with the ring's secret: \(flush.out) \(flush.err)")
        // … and with another secret they are refused.
        let otherSecret = "\(temp.path)/other-secret"
        try ClusterSecretFile.createIfMissing(at: otherSecret)
        let refused = try await confab(binary, ["flush", "--dir", dir, "--cluster-secret-file", otherSecret])
        #expect(refused.status != 0)
        #expect(
            refused.out.contains("authentication failed"), "flush with another secret: \(refused.out) \(refused.err)")

        // A node will not start with a secret others may read, nor without one.
        let open = "\(temp.path)/open-secret"
        _ = FileManager.default.createFile(
            atPath: open, contents: Data(ClusterSecret.generate()), attributes: [.posixPermissions: 0o644])
        let badNode = try await confab(
            binary,
            [
                "node", "--data-dir", "\(temp.path)/n9", "--listen", "127.0.0.1:0",
                "--cluster-secret-file", open,
            ])
        #expect(badNode.status != 0)
        #expect(badNode.err.contains("has mode 644"), "node with a 0644 secret: \(badNode.err)")
        // The environment variable names the file the same way (and the same check applies).
        let fromEnvironment = try await TestCommand.run(
            binary, ["node", "--data-dir", "\(temp.path)/n9", "--listen", "127.0.0.1:0"],
            environment: [ClusterSecretFile.environmentVariable: open])
        #expect(fromEnvironment.status != 0)
        #expect(
            fromEnvironment.err.contains("has mode 644"),
            "node with $CONFAB_CLUSTER_SECRET_FILE: \(fromEnvironment.err)")
        let noSecret = try await confab(binary, ["node", "--data-dir", "\(temp.path)/n9", "--listen", "127.0.0.1:0"])
        #expect(noSecret.status != 0)
        #expect(noSecret.err.contains("no cluster secret"), "node without a secret: \(noSecret.err)")

        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        #expect(stop.status == 0, "ring stop: \(stop.err)")
    }
}
