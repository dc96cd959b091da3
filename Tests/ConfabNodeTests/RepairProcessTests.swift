import ConfabClient
import ConfabRing
import ConfabWire
import Foundation
import Testing

/// `confab repair` as a process against three real `confab node` processes (RF 3, hints off):
/// a node that was down while writes happened comes back stale, the repair reports its progress
/// and the differing ranges it streamed, and afterwards the replicas agree.
@Suite(.serialized) struct RepairProcessTests {
    /// JSON objects, one per non-empty line of `text`.
    func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func int(_ value: Any?) -> Int { (value as? NSNumber)?.intValue ?? -1 }

    /// Runs blocking process work on its own thread (never on the few cooperative threads).
    func blocking<T: Sendable>(_ process: NodeProcess, _ body: @escaping @Sendable (NodeProcess) throws -> T)
        async throws -> T
    {
        let box = ProcessBox(process: process)
        return try await offCooperativePool { Result { try body(box.process) } }.get()
    }

    func confab(_ binary: String, _ args: [String]) async throws -> TestCommand {
        try await runConfab(binary, args)
    }

    @Test func repairShowsProgressStreamsDifferingRangesAndConvergesAStaleReplica() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let dir = TempDirectory("confab-repair-proc")
        let started = ContinuousClock.now
        // Hint window 0: no hint is kept for a replica known to be down, so only repair can bring
        // back what it missed.
        let args =
            [
                "--rf", "3", "--vnodes", "8", "--gossip-interval-ms", "100", "--write-timeout-ms", "1000",
                "--hint-window-seconds", "0",
            ]
            + (ProcessInfo.processInfo.environment["CONFAB_NODE_LOG_LEVEL"].map { ["--log-level", $0] } ?? [])
        defer {
            if let keep = ProcessInfo.processInfo.environment["CONFAB_KEEP_LOGS"] {
                try? FileManager.default.copyItem(atPath: dir.path, toPath: "\(keep)/repair-\(UUID().uuidString)")
            }
        }
        let p1 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n1", logDir: dir.path, tag: "n1", arguments: args)
        let port1 = try await p1.waitUntilListening()
        let seeds = ["--seeds", "127.0.0.1:\(port1)"]
        let p2 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n2", logDir: dir.path, tag: "n2", arguments: args + seeds)
        var p3 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n3", logDir: dir.path, tag: "n3", arguments: args + seeds)
        let port2 = try await p2.waitUntilListening()
        let port3 = try await p3.waitUntilListening()
        let addresses = [port1, port2, port3].map { NodeAddress(host: "127.0.0.1", port: $0) }
        let viaN1 = ConfabClient.forTests(nodes: [addresses[0]], timeout: .seconds(30))
        for address in addresses {
            let c = ConfabClient.forTests(nodes: [address])
            // Generous: the machine running the suite may be busy (formation takes ~2 s idle).
            try await eventually("\(address) sees 3 normal nodes", within: .seconds(30)) {
                try await ringIsNormal(c, count: 3)
            }
            await c.shutdown()
        }

        // Data on every replica first (at ALL: a QUORUM write is acknowledged by two replicas, and
        // n3's copy may still be on its way when it is killed — with the coordinator answering
        // from its event loop that became common, and n3 then missed a "before" message), then
        // n3 goes down and misses the rest.
        let chats: [Int64] = Array(1...6)
        let survivors = ConfabClient.forTests(nodes: [addresses[0], addresses[1]])
        var posted: Set<String> = []
        for i in 0..<18 {
            posted.insert(
                try await survivors.post(
                    chatId: chats[i % chats.count], sender: "u", text: "before \(i)",
                    messageId: "before-\(i)", consistency: .all
                ).messageId)
        }
        p3.signal(SIGKILL)
        _ = try await p3.waitForExit()
        // Down in both survivors' views, and still so a few rounds later: a heartbeat of n3 that
        // only one of them had seen can revive it in the other's view for a moment, and a write
        // coordinated then would be hinted (its hint replayed when n3 returns).
        let viaN2 = ConfabClient.forTests(nodes: [addresses[1]])
        func n3Down() async throws -> Bool {
            for c in [viaN1, viaN2] {
                if try await c.status().nodes.contains(where: { Int($0.port) == port3 && $0.isUp }) { return false }
            }
            return true
        }
        try await eventually("n1 and n2 see n3 down") { try await n3Down() }
        try await Task.sleep(for: .milliseconds(500))
        try await eventually("n1 and n2 still see n3 down") { try await n3Down() }
        var missed: Set<String> = []
        for i in 0..<30 {
            let id = try await survivors.post(
                chatId: chats[i % chats.count], sender: "u", text: "while n3 down \(i)",
                messageId: "missed-\(i)"
            ).messageId
            missed.insert(id)
        }
        posted.formUnion(missed)

        p3 = try NodeProcess(
            binary: binary, dataDir: "\(dir.path)/n3", logDir: dir.path, tag: "n3b",
            listen: "127.0.0.1:\(port3)", arguments: args + seeds)
        _ = try await p3.waitUntilListening()
        let viaN3 = ConfabClient.forTests(nodes: [addresses[2]], timeout: .seconds(30))
        try await eventually("n1 sees 3 normal nodes after the restart") { try await ringIsNormal(viaN1, count: 3) }
        try await eventually("n3 sees 3 normal nodes after the restart") { try await ringIsNormal(viaN3, count: 3) }

        // ONE reads n3 coordinates are answered from its own data (it replicates every key).
        func onN3() async throws -> Set<String> {
            var ids: Set<String> = []
            for chat in chats {
                ids.formUnion(try await viaN3.history(chatId: chat, limit: 1000, consistency: .one).map(\.messageId))
            }
            return ids
        }
        // Hints are off, so n3 misses the writes made while it was down (all of them, unless the
        // failure detector wavered in the first instant; only those can be missing).
        let staleMissing = posted.subtracting(try await onN3())
        #expect(
            !staleMissing.isEmpty && staleMissing.isSubset(of: missed),
            "\(staleMissing.count) of \(missed.count) missing")

        // Repair through n1, as `confab repair --json`: progress lines, then the report.
        let first = try await confab(binary, ["repair", "--node", "127.0.0.1:\(port1)", "--json", "--timeout", "60"])
        #expect(first.status == 0, "repair failed: \(first.err)")
        let lines = jsonLines(first.out)
        let progress = lines.filter { $0["event"] as? String == "progress" }
        let report = try #require(lines.last { $0["event"] as? String == "report" }, "no report in: \(first.out)")
        #expect(progress.count >= 8, "expected progress for each table and range, got \(progress.count)")
        let messagesProgress = progress.filter {
            $0["keyspace"] as? String == "confab" && $0["table"] as? String == "messages"
        }
        let lastMessages = try #require(messagesProgress.last)
        #expect(int(lastMessages["ranges_done"]) == 24 && int(lastMessages["ranges_total"]) == 24)
        #expect(int(lastMessages["ranges_differing"]) > 0)
        #expect(int(lastMessages["rows_streamed"]) >= staleMissing.count, "\(lastMessages)")
        // Percent only grows and ends at 100.
        let percents = progress.compactMap { ($0["percent"] as? NSNumber)?.doubleValue }
        #expect(percents == percents.sorted() && percents.last == 100, "\(percents)")
        let outOfSync = int(report["ranges_out_of_sync"])
        let rows = int(report["rows_streamed"])
        #expect(outOfSync > 0 && rows >= staleMissing.count, "\(report)")
        print(
            "repair process test: n3 missed \(staleMissing.count) of \(missed.count); first repair \(outOfSync) differing ranges, \(rows) rows streamed, \(progress.count) progress lines"
        )

        // The replicas now agree: Merkle trees of the whole ring are equal, and a second repair (in
        // text form) finds nothing to do.
        let trees = try await addresses.asyncMap {
            try await viaN1.merkleTree(at: $0, range: .fullRing, keyspace: "confab", table: "messages")
        }
        #expect(trees[0].leaves == trees[1].leaves && trees[1].leaves == trees[2].leaves)
        let second = try await confab(binary, ["repair", "--node", "127.0.0.1:\(port3)", "--quiet", "--timeout", "60"])
        #expect(second.status == 0, "second repair failed: \(second.err)")
        #expect(second.out.contains("100.0%]"), "no progress lines in: \(second.out)")
        #expect(second.out.contains(" 0 out of sync, 0 sub-ranges streamed (0 rows)"), "\(second.out)")

        // And n3 answers every message from its own data.
        #expect(posted.subtracting(try await onN3()).isEmpty)
        print("repair process test: \(ContinuousClock.now - started) in all")

        for c in [viaN1, viaN2, viaN3, survivors] { await c.shutdown() }
        for p in [p1, p2, p3] {
            p.signal(SIGTERM)
            #expect(try await p.waitForExit() == 0)
        }
    }
}

/// Hands a `NodeProcess` to the thread that waits on it; only that thread uses it meanwhile.
private struct ProcessBox: @unchecked Sendable {
    let process: NodeProcess
}
