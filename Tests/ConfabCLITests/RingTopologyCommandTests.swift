import ConfabProcess
import ConfabWire
import Foundation
import Testing

/// `confab ring add` and `confab ring decommission` on a ring started by `confab ring start`
/// (default timings: 1 s gossip, 5 s ring delay).
@Suite(.serialized) struct RingTopologyCommandTests {
    private func confab(_ binary: String, _ args: [String]) async throws -> TestCommand {
        try await TestCommand.run(binary, args)
    }

    @Test func addBootstrapsAFourthNodeAndDecommissionRemovesOne() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let temp = TempDirectory("confab-ring-topology")
        let dir = "\(temp.path)/ring"
        defer {
            if let state = try? RingFile.load(from: dir) {
                for node in state.nodes where node.isAlive { node.process?.send(SIGKILL) }
                _ = ServerProcess.waitForExit(state.nodes.compactMap(\.process), timeout: .seconds(5))
            }
            // A decommissioned node is no longer in ring.json; its pid is gone by then.
        }
        let start = try await confab(binary, ["ring", "start", "--nodes", "3", "--dir", dir, "--timeout", "40"])
        try #require(start.status == 0, "ring start failed: \(start.err)")
        var ids: [String] = []
        for i in 0..<12 {
            let r = try await confab(
                binary, ["post", "\(500 + i % 3)", "--sender", "ada", "--text", "m\(i)", "--dir", dir])
            #expect(r.status == 0, "post failed: \(r.err)")
            ids.append(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        }

        let add = try await confab(binary, ["ring", "add", "--dir", dir, "--timeout", "60"])
        try #require(add.status == 0, "ring add failed: \(add.err)")
        #expect(add.err.contains("starting node 4") && add.err.contains("bootstrapped and is normal"))
        #expect(add.out.split(separator: "\n").filter { $0.hasPrefix("UN  127.0.0.1:") }.count == 4)
        var state = try #require(try RingFile.load(from: dir))
        #expect(state.nodes.map(\.index) == [1, 2, 3, 4] && state.nodes.allSatisfy(\.isAlive))
        let log4 = (try? String(contentsOfFile: state.nodes[3].log, encoding: .utf8)) ?? ""
        #expect(log4.contains("bootstrap complete"), "node 4's log does not show a bootstrap")

        let node2 = state.nodes[1]
        let leave = try await confab(binary, ["ring", "decommission", "2", "--dir", dir])
        try #require(leave.status == 0, "ring decommission failed: \(leave.err)")
        #expect(leave.err.contains("announced LEFT"))
        #expect(!node2.isAlive)
        state = try #require(try RingFile.load(from: dir))
        #expect(state.nodes.map(\.index) == [1, 3, 4])
        #expect(state.nodes.allSatisfy { !$0.command.joined(separator: " ").contains(node2.addressText) })

        let status = try await confab(binary, ["ring", "status", "--dir", dir, "--json"])
        try #require(status.status == 0, "ring status failed: \(status.err)")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let ring = try decoder.decode(RingStatus.self, from: Data(status.out.utf8))
        #expect(ring.nodes.count == 3 && ring.nodes.allSatisfy { $0.state == "normal" && $0.isUp })
        #expect(!ring.nodes.contains { Int($0.port) == node2.port })
        var found: Set<String> = []
        for chat in 500..<503 {
            let r = try await confab(
                binary, ["history", "\(chat)", "--json", "--limit", "100", "--consistency", "all", "--dir", dir])
            #expect(r.status == 0, "history failed: \(r.err)")
            for line in r.out.split(separator: "\n") {
                if let id = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["message_id"]
                    as? String
                {
                    found.insert(id)
                }
            }
        }
        #expect(found.isSuperset(of: ids))

        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        #expect(stop.status == 0 && stop.out.contains("stopped 3 nodes"), "ring stop: \(stop.out) \(stop.err)")
    }
}
