import ConfabProcess
import ConfabWire
import Foundation
import Testing

/// `confab ring …` with real node processes: start, post/history through the ring directory,
/// kill, restart, status, stop.
@Suite(.serialized) struct RingCommandTests {
    /// Runs `confab ARGS` with extra environment to completion. Its output is read to EOF, so a
    /// node that kept the CLI's stdout open would hang the test: detached nodes must not.
    private func confab(_ binary: String, _ args: [String], environment: [String: String] = [:]) async throws
        -> TestCommand
    {
        try await TestCommand.run(binary, args, environment: environment)
    }

    private func loadState(_ directory: String) throws -> RingFile {
        try #require(try RingFile.load(from: directory), "no ring.json in \(directory)")
    }

    /// A live process that is a node of this ring (not a recycled pid).
    private func isRunning(_ pid: Int32?, dataDir: String) -> Bool {
        guard let pid else { return false }
        return ServerProcess(pid: pid, logPath: "", expectedArgument: dataDir).isAlive
    }

    /// Whatever a test did, no node of the ring in `dir` outlives it.
    private func killRing(in dir: String) {
        guard let state = try? RingFile.load(from: dir) else { return }
        for node in state.nodes where isRunning(node.pid, dataDir: node.dataDir) {
            kill(node.pid!, SIGKILL)
        }
        _ = ServerProcess.waitForExit(state.nodes.compactMap(\.process), timeout: .seconds(5))
    }

    @Test func startPostKillRestartStatusStop() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let temp = TempDirectory("confab-ring-cli")
        let dir = "\(temp.path)/ring"
        // Whatever happens, no node outlives the test.
        defer { killRing(in: dir) }
        let began = Date()

        // start: progress on stderr, a status table on stdout, 3 live pids in ring.json.
        let start = try await confab(binary, ["ring", "start", "--nodes", "3", "--dir", dir, "--timeout", "30"])
        try #require(start.status == 0, "ring start failed: \(start.err)")
        #expect(start.err.contains("starting node 2 of 3 on 127.0.0.1:"))
        #expect(start.err.contains("waiting for 3 nodes to be normal"))
        #expect(start.out.contains("Owns (effective)") && start.out.contains("UN  127.0.0.1:"))
        var state = try loadState(dir)
        #expect(state.nodes.count == 3 && state.replicationFactor == 3)
        #expect(Set(state.nodes.map(\.port)).count == 3)
        for node in state.nodes {
            #expect(isRunning(node.pid, dataDir: node.dataDir), "node \(node.index) not running after start")
            #expect(node.state == "running" && node.id != nil)
            #expect(node.log == "\(dir)/node\(node.index)/node.log")
        }

        // A second start over the running ring is refused.
        let again = try await confab(binary, ["ring", "start", "--dir", dir])
        #expect(again.status != 0)
        #expect(again.err.contains("already running") && again.err.contains("confab ring stop"))

        // status --json: every member the answering node reports is normal and up; a node that
        // takes part in a ring reports all three.
        func checkStatus() async throws {
            let r = try await confab(binary, ["ring", "status", "--dir", dir, "--json"])
            try #require(r.status == 0, "ring status failed: \(r.err)")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let status = try decoder.decode(RingStatus.self, from: Data(r.out.utf8))
            #expect(!status.nodes.isEmpty)
            for n in status.nodes {
                #expect(n.state == "normal" && n.isUp, "\(n.host):\(n.port) is \(n.state), up: \(n.isUp)")
            }
            if status.nodes.count > 1 {
                #expect(status.nodes.count == 3)
                #expect(Set(status.nodes.map { Int($0.port) }) == Set(try loadState(dir).nodes.map(\.port)))
            }
            #expect(try loadState(dir).nodes.allSatisfy { isRunning($0.pid, dataDir: $0.dataDir) })
        }
        try await checkStatus()

        // post + history with no --node: the ring directory (here through $CONFAB_RING_DIR).
        let env = ["CONFAB_RING_DIR": dir]
        var ids: [String] = []
        func post(_ text: String) async throws {
            let r = try await confab(
                binary, ["post", "77", "--sender", "ada", "--text", text, "--consistency", "quorum"],
                environment: env)
            #expect(r.status == 0, "post failed: \(r.err)")
            ids.append(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        func history(_ level: String) async throws -> [String] {
            let r = try await confab(
                binary, ["history", "77", "--json", "--limit", "100", "--consistency", level], environment: env)
            #expect(r.status == 0, "history failed: \(r.err)")
            return try r.out.split(separator: "\n").map {
                let row = try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
                return try #require(row["message_id"] as? String)
            }
        }
        for text in ["one", "two", "three"] { try await post(text) }
        #expect(try await history("quorum") == ids.reversed())

        // kill 2: its pid is gone; QUORUM writes still succeed.
        let killedPID = try #require(state.nodes[1].pid)
        let kill2 = try await confab(binary, ["ring", "kill", "2", "--dir", dir])
        #expect(kill2.status == 0, "ring kill failed: \(kill2.err)")
        #expect(!isRunning(killedPID, dataDir: state.nodes[1].dataDir))
        #expect(try loadState(dir).nodes[1].state == "killed")
        let killAgain = try await confab(binary, ["ring", "kill", "2", "--dir", dir])
        #expect(killAgain.status != 0 && killAgain.err.contains("not running"))
        for text in ["four", "five"] { try await post(text) }

        // restart 2: back with a new pid, same port and id.
        let restart = try await confab(binary, ["ring", "restart", "2", "--dir", dir, "--timeout", "30"])
        #expect(restart.status == 0, "ring restart failed: \(restart.err)")
        let restarted = try loadState(dir).nodes[1]
        #expect(restarted.pid != killedPID && isRunning(restarted.pid, dataDir: restarted.dataDir))
        #expect(restarted.port == state.nodes[1].port && restarted.id == state.nodes[1].id)

        // Every acknowledged message at ALL; the table and the status.
        #expect(try await history("all") == ids.reversed())
        try await checkStatus()
        let table = try await confab(binary, ["ring", "status", "--dir", dir])
        #expect(table.status == 0)
        #expect(table.out.contains("Address") && table.out.contains("Host ID") && table.out.contains("UN"))
        #expect(table.out.split(separator: "\n").filter { $0.contains("  running  ") }.count == 3)

        // stop: every node exits after SIGTERM (no SIGKILL needed); nothing is left running.
        state = try loadState(dir)
        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        #expect(stop.status == 0, "ring stop failed: \(stop.err)")
        #expect(stop.out.contains("stopped 3 nodes") && !stop.out.contains("SIGKILL"))
        for node in state.nodes {
            #expect(!isRunning(node.pid, dataDir: node.dataDir), "node \(node.index) still running after stop")
        }
        #expect(try loadState(dir).nodes.allSatisfy { $0.state == "stopped" })

        // With the ring stopped, status explains.
        let down = try await confab(binary, ["ring", "status", "--dir", dir])
        #expect(down.status != 0 && down.err.contains("no node answered") && down.err.contains("confab ring start"))
        #expect(Date().timeIntervalSince(began) < 40)
    }

    /// One node that refuses to open (here its data directory holds a damaged node id) does not
    /// take the healthy nodes down: `ring start` starts the others, prints their status, names
    /// the failed node and why, and exits non-zero with the healthy nodes still running.
    @Test func startLeavesTheHealthyNodesRunningWhenOneRefusesToOpen() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let temp = TempDirectory("confab-ring-refuse")
        let dir = "\(temp.path)/ring"
        defer { killRing(in: dir) }
        let start = try await confab(binary, ["ring", "start", "--nodes", "3", "--dir", dir, "--timeout", "30"])
        try #require(start.status == 0, "ring start failed: \(start.err)")
        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        try #require(stop.status == 0, "ring stop failed: \(stop.err)")
        let broken = try loadState(dir).nodes[1]
        try "not a node id\n".write(toFile: "\(broken.dataDir)/node-id", atomically: true, encoding: .utf8)

        let again = try await confab(binary, ["ring", "start", "--dir", dir, "--timeout", "30"])
        #expect(again.status != 0, "ring start succeeded with node 2 refusing to open: \(again.err)")
        #expect(again.err.contains("node 2") && again.err.contains("refused to start"), "\(again.err)")
        #expect(again.err.contains("does not hold a node id"), "the reason is not quoted: \(again.err)")
        #expect(!again.err.contains("stopping the nodes started so far"), "\(again.err)")
        #expect(again.out.contains("UN  127.0.0.1:"), "no status of the healthy nodes: \(again.out)")
        let state = try loadState(dir)
        for node in state.nodes where node.index != 2 {
            #expect(isRunning(node.pid, dataDir: node.dataDir), "healthy node \(node.index) is not running")
            #expect(node.state == "running")
        }
        #expect(state.nodes[1].state == "failed" && !isRunning(state.nodes[1].pid, dataDir: state.nodes[1].dataDir))

        // The healthy nodes serve: a QUORUM post and read through the ring directory.
        let post = try await confab(
            binary, ["post", "78", "--sender", "ada", "--text", "still up", "--consistency", "quorum"],
            environment: ["CONFAB_RING_DIR": dir])
        #expect(post.status == 0, "post failed: \(post.err)")
        let down = try await confab(binary, ["ring", "stop", "--dir", dir])
        #expect(down.status == 0, "ring stop failed: \(down.err)")
    }

    /// `ring start` picks free ports in advance (ring.json records them); another process may
    /// bind one first. The node that lost its port is moved to fresh ones, and when it is the
    /// seed every node's `--seeds` follows, instead of the start failing on "address in use".
    @Test func aNodeWhosePortIsTakenBeforeItBindsIsMovedNotLost() async throws {
        let binary = try #require(confabExecutablePath(), "confab executable not found next to the test bundle")
        let temp = TempDirectory("confab-ring-port")
        let dir = "\(temp.path)/ring"
        defer { killRing(in: dir) }
        let start = try await confab(
            binary, ["ring", "start", "--nodes", "2", "--dir", dir, "--timeout", "40"],
            environment: ["CONFAB_TEST_TAKE_PORT_OF_NODE": "1"])
        try #require(start.status == 0, "ring start failed: \(start.err)")
        #expect(start.err.contains("node 1 lost its port to another process"), "\(start.err)")
        let state = try loadState(dir)
        let seed = state.nodes[0]
        #expect(seed.command.contains("127.0.0.1:\(seed.port)"), "\(seed.command)")
        for node in state.nodes {
            #expect(isRunning(node.pid, dataDir: node.dataDir), "node \(node.index) is not running")
            #expect(node.command.contains("127.0.0.1:\(node.port)"))
            let seeds = try #require(node.command.firstIndex(of: "--seeds"))
            #expect(node.command[seeds + 1] == "127.0.0.1:\(seed.port)", "\(node.command)")
        }
        let post = try await confab(
            binary, ["post", "79", "--sender", "ada", "--text", "moved", "--consistency", "all"],
            environment: ["CONFAB_RING_DIR": dir])
        #expect(post.status == 0, "post failed: \(post.err)")
        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        #expect(stop.status == 0, "ring stop failed: \(stop.err)")
    }

    @Test func commandsWithoutARingExplain() async throws {
        let binary = try #require(confabExecutablePath())
        let temp = TempDirectory("confab-ring-none")
        for args in [["ring", "status"], ["ring", "stop"], ["ring", "kill", "1"], ["ring", "restart", "1"]] {
            let r = try await confab(binary, args + ["--dir", temp.path])
            #expect(r.status != 0)
            #expect(
                r.err.contains("no ring in \(temp.path)") && r.err.contains("confab ring start"), "\(args): \(r.err)")
        }
        let post = try await confab(binary, ["post", "1", "--sender", "a", "--text", "b", "--dir", temp.path])
        #expect(post.status != 0 && post.err.contains("has no ring.json"))
        let badRF = try await confab(binary, ["ring", "start", "--nodes", "2", "--rf", "3", "--dir", temp.path])
        #expect(badRF.status != 0 && badRF.err.contains("--rf 3 needs at least 3 nodes"))
    }

    /// `--node-config` gives every node of a new ring the file's settings (each node logs the
    /// group commit settings it runs with); a file with a bad line is refused before any node
    /// starts, and a stopped ring, which starts again with its recorded settings, refuses it.
    @Test func nodeConfigReachesEveryNodeOfANewRing() async throws {
        let binary = try #require(confabExecutablePath())
        let temp = TempDirectory("confab-ring-node-config")
        let dir = "\(temp.path)/ring"
        defer { killRing(in: dir) }

        let bad = "\(temp.path)/bad.conf"
        try "wal_group_quiet_us = 700\nwal_group_window_us = lots\n".write(
            toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await confab(binary, ["ring", "start", "--nodes", "2", "--dir", dir, "--node-config", bad])
        #expect(refused.status != 0)
        #expect(refused.err.contains("--node-config") && refused.err.contains("bad.conf:2"), "\(refused.err)")
        #expect(try RingFile.load(from: dir) == nil, "a refused --node-config must not leave a ring behind")

        let good = "\(temp.path)/node.conf"
        try "# fewer, larger syncs\nwal_group_quiet_us = 700\nwal_group_window_us = 3000\n".write(
            toFile: good, atomically: true, encoding: .utf8)
        let start = try await confab(
            binary, ["ring", "start", "--nodes", "2", "--dir", dir, "--node-config", good, "--timeout", "30"])
        try #require(start.status == 0, "ring start failed: \(start.err)")
        let state = try loadState(dir)
        #expect(state.nodes.count == 2)
        for node in state.nodes {
            #expect(node.command.contains(good), "node \(node.index): \(node.command)")
            let log = try String(contentsOfFile: node.log, encoding: .utf8)
            #expect(
                log.contains("wal_group_quiet_us=700") && log.contains("wal_group_window_us=3000")
                    && log.contains("wal_group_max_writes=32"),
                "node \(node.index) log: \(log.suffix(2000))")
        }

        let stop = try await confab(binary, ["ring", "stop", "--dir", dir])
        try #require(stop.status == 0, "ring stop failed: \(stop.err)")
        let again = try await confab(binary, ["ring", "start", "--dir", dir, "--node-config", good])
        #expect(again.status != 0 && again.err.contains("applies to a new ring only"), "\(again.err)")
    }

    // MARK: Pure parts

    private func node(_ i: Int, id: String? = nil) -> RingFile.Node {
        RingFile.Node(
            index: i, id: id, host: "127.0.0.1", port: 7400 + i, pid: nil, dataDir: "/d\(i)", log: "/l\(i)",
            command: [], state: "running")
    }

    private func member(_ i: Int, state: String = "normal", up: Bool = true, id: String = "") -> RingNodeStatus {
        RingNodeStatus(
            state: state, isUp: up, id: id, host: "127.0.0.1", port: UInt16(7400 + i), loadBytes: 0,
            tokens: 16, ownership: 1)
    }

    @Test func readinessNeedsEveryExpectedNodeUpAndNormal() {
        let expected = [node(1), node(2), node(3)]
        let all = RingStatus(clusterName: "c", replicationFactor: 3, nodes: [member(1), member(2), member(3)])
        #expect(RingReadiness.judge(all, expected: expected) == .ready)
        let partial = RingStatus(clusterName: "c", replicationFactor: 3, nodes: [member(1), member(2)])
        #expect(
            RingReadiness.judge(partial, expected: expected) == .waiting("does not list 127.0.0.1:7403 (node 3) yet"))
        let joining = RingStatus(
            clusterName: "c", replicationFactor: 3, nodes: [member(1), member(2, state: "joining"), member(3)])
        #expect(RingReadiness.judge(joining, expected: expected) == .waiting("sees 127.0.0.1:7402 (node 2) as UJ"))
        let down = RingStatus(
            clusterName: "c", replicationFactor: 3, nodes: [member(1), member(2), member(3, up: false)])
        #expect(RingReadiness.judge(down, expected: expected) == .waiting("sees 127.0.0.1:7403 (node 3) as DN"))
        // A down node that is not expected (killed) does not hold up readiness.
        #expect(RingReadiness.judge(down, expected: [node(1), node(2)]) == .ready)
        // Matched by host id when both are known, whatever the address.
        let moved = RingStatus(clusterName: "c", replicationFactor: 1, nodes: [member(9, id: "abc")])
        #expect(RingReadiness.judge(moved, expected: [node(1, id: "abc")]) == .ready)
        // A lone node without ring membership reports itself without an address.
        var lone = member(1)
        lone.host = ""
        lone.port = 0
        #expect(
            RingReadiness.judge(RingStatus(clusterName: "", replicationFactor: 1, nodes: [lone]), expected: expected)
                == .standalone)
    }

    @Test func tableLooksLikeNodetool() {
        #expect(RingStatusTable.load(512) == "512 bytes")
        #expect(RingStatusTable.load(1536) == "1.50 KiB")
        #expect(RingStatusTable.load(3 * 1024 * 1024) == "3.00 MiB")
        #expect(RingStatusTable.owns(2.0 / 3) == "66.7%")
        #expect(RingStatusTable.code(member(1, state: "leaving", up: false)) == "DL")
        let text = RingStatusTable.render(
            RingStatus(
                clusterName: "confab", replicationFactor: 3,
                nodes: [member(1, id: "id-1"), member(2, up: false, id: "id-2")]),
            answeredBy: "127.0.0.1:7401")
        let lines = text.split(separator: "\n")
        #expect(
            lines[3].hasPrefix("--  Address") && lines[3].contains("Owns (effective)") && lines[3].hasSuffix("Host ID"))
        #expect(lines[4].hasPrefix("UN  127.0.0.1:7401  0 bytes") && lines[4].hasSuffix("100.0%            id-1"))
        #expect(lines[5].hasPrefix("DN  127.0.0.1:7402"))
    }

    @Test func stateFileRoundTripsAndListeningLineParses() async throws {
        let temp = TempDirectory("confab-ring-state")
        let state = RingFile(replicationFactor: 3, vnodes: 16, nodes: [node(1, id: "a"), node(2)])
        try state.save(to: temp.path)
        #expect(try RingFile.load(from: temp.path) == state)
        let text = try String(contentsOfFile: "\(temp.path)/ring.json", encoding: .utf8)
        #expect(text.contains("\"replication_factor\" : 3") && text.contains("\"data_dir\" : \"/d1\""))
        #expect(!FileManager.default.fileExists(atPath: "\(temp.path)/ring.json.tmp"))
        #expect(
            RingSupervisor.listeningID(
                in: "warning x\nconfab node 5b0e-1 listening on 127.0.0.1:7400 (data: d, sync: group)\n")
                == "5b0e-1")
        #expect(RingSupervisor.listeningID(in: "confab node 5b0e-1 starting\n") == nil)
        #expect(RingFile.directory("/a/b/../c") == "/a/c")
    }
}
