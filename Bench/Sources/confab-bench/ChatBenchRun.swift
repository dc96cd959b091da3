import ArgumentParser
import ConfabProcess
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// One benchmark user: an account, its home server (0 = A, 1 = B) and its device's socket.
struct BenchUser: Sendable {
    var name: String
    var home: Int
    var token = ""
}

/// The state of one `confab-bench chat` run: the processes it started and the sockets it holds.
final class ChatBenchRun: @unchecked Sendable {
    let config: ChatBenchConfig
    let root: String
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let router = EventRouter()
    private var ring: LocalRing?
    private var servers: [ChatServerProcess] = []
    private var pools: [ChatHTTPPool] = []
    private var sockets: [ChatSocket] = []
    private var fleets: [IdleFleet] = []
    /// The server's own cap is its descriptor limit less 1,000 (`--max-connections`); the idle
    /// phase fills the limit less 500 (19,000 + 200 warm-up here), so the cap is raised to match.
    private var extraServerArguments: [String] {
        [
            "--password-rounds", String(config.passwordRounds),
            "--max-connections", String(max(1_000, Int(min(FileLimit.current().hard, 1_000_000)) - 500)),
            // Three nodes and two servers share the machine: each its share of the cores, as
            // `confab up` and `confab ring start` give them.
            "--event-loop-threads", String(CoreShare.eventLoopThreads(nodes: 5) ?? 1),
        ]
    }
    private let runId = String(UInt32.random(in: 0...UInt32.max) % 1_000_000, radix: 36)
    private var secret = ""
    private var nodes = ""

    init(config: ChatBenchConfig, root: String) {
        self.config = config
        self.root = root
    }

    /// Stops everything this run started; safe to call more than once.
    func shutdown() {
        for f in fleets { f.close() }
        fleets = []
        for s in sockets { s.channel.close(promise: nil) }
        sockets = []
        let pools = self.pools
        self.pools = []
        _ = try? blockOn { for p in pools { await p.close() } }
        for s in servers { s.stop() }
        servers = []
        ring?.stop()
        ring = nil
        try? group.syncShutdownGracefully()
    }

    func execute() throws -> ChatReport {
        var report = ChatReport(config: config)
        let benchLimit = FileLimit.raiseSoftToHard()
        report.idle.benchSoftLimit = Int(benchLimit)
        report.idle.fdLimitError = FileLimit.tryRaise(to: 100_512)

        // The ring.
        let ringDir = "\(root)/ring"
        let ring = LocalRing(binary: config.confab, directory: ringDir, nodeConfig: config.nodeConfig)
        self.ring = ring
        Progress.log("[chat] starting a 3-node RF-3 ring in \(ringDir)")
        try ring.start(nodes: 3, rf: 3)
        nodes = try ring.addresses().map { "\($0.host):\($0.port)" }.joined(separator: ",")
        secret = ChatTokens.freshSecret()
        let secretFile = "\(root)/chat-secret"
        guard
            FileManager.default.createFile(
                atPath: secretFile, contents: Data((secret + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw ChatBenchError("cannot write \(secretFile)") }

        // Server A, started with a low soft descriptor limit to see whether it raises it.
        var a = try startServer(
            "bench-a", secretFile: secretFile, softLimit: config.serverSoftLimit > 0 ? config.serverSoftLimit : nil)
        let limits = a.fileLimits()
        report.idle.serverSoftLimitAtStart = config.serverSoftLimit > 0 ? config.serverSoftLimit : nil
        report.idle.serverSoftLimit = limits.soft
        report.idle.serverHardLimit = limits.hard
        report.idle.serverRaisedSoftLimit =
            config.serverSoftLimit > 0 ? (limits.soft != nil && limits.soft == limits.hard) : nil
        if config.serverSoftLimit > 0, report.idle.serverRaisedSoftLimit == false {
            Progress.log(
                "[chat] server A kept the soft descriptor limit \(limits.soft.map(String.init) ?? "?") it was started with (hard \(limits.hard.map(String.init) ?? "?")): it does not raise it at startup. Restarting it with the bench's limits for the measurements."
            )
            a.stop()
            servers.removeAll { $0 === a }
            a = try startServer("bench-a", secretFile: secretFile, softLimit: nil)
            let l = a.fileLimits()
            report.idle.serverSoftLimit = l.soft
            report.idle.serverHardLimit = l.hard
        }
        let aURL = a.url
        pools.append(try blockOn { [group] in try await ChatHTTPPool.connect(baseURL: aURL, size: 4, group: group) })

        // 3. Idle connections, while A is the only chat server (every user is at home there).
        if !config.skipIdle {
            try idlePhase(server: a, report: &report.idle)
            if !a.isRunning {
                // Reported (server_alive_with_connections, server_exit); the other phases go on
                // with a fresh server A.
                report.idle.serverExit =
                    "server A exited during the idle phase; the end of its log:\n" + a.tail(lines: 12)
                Progress.log("[chat] \(report.idle.serverExit!)\n[chat] restarting server A for the other phases")
                let dead = pools.removeFirst()
                _ = try? blockOn { await dead.close() }
                servers.removeAll { $0 === a }
                a = try startServer("bench-a", secretFile: secretFile, softLimit: nil)
                let url = a.url
                pools.insert(
                    try blockOn { [group] in try await ChatHTTPPool.connect(baseURL: url, size: 4, group: group) },
                    at: 0)
            }
        }

        // Server B, and both agreeing on the two-server hash ring.
        let b = try startServer("bench-b", secretFile: secretFile, softLimit: nil)
        let bURL = b.url
        pools.append(try blockOn { [group] in try await ChatHTTPPool.connect(baseURL: bURL, size: 4, group: group) })
        try awaitRouting()

        // Users, chats, groups, devices.
        let setup = try setUpChats(report: &report)
        try awaitSettledViews()
        // 1. Latency.
        for (k, rate) in config.latencyRates.enumerated() {
            let count = max(1, Int(rate * config.latencySeconds))
            // At least one message per pair: every chat is opened by its owner (header, end read,
            // tombstone) before the measured run, so the run shows the steady state's ring cost.
            let warm = max(config.pairs, Int(rate * config.warmupSeconds))
            Progress.log(
                String(
                    format: "[chat] latency warm-up: %.0f msg/s for %.2f s", rate, Double(warm) / rate))
            _ = latencyRun(tag: "w\(k)", rate: rate, count: warm, setup: setup)
            settle(setup.senders)
            Progress.log(
                String(
                    format: "[chat] latency: %.0f msg/s for %.1f s (%@)", rate, config.latencySeconds,
                    setup.crossServer ? "cross-server" : "same-server"))
            let r = latencyRun(tag: "l\(k)", rate: rate, count: count, setup: setup)
            Progress.log(
                String(
                    format: "[chat]   p50 %.2f ms, p99 %.2f ms, p999 %.2f ms; %d/%d received, errors %@",
                    r.latency.p50 / 1000, r.latency.p99 / 1000, r.latency.p999 / 1000, r.delivered, r.messages,
                    "\(r.errors)"))
            report.latencyRuns.append(r)
            settle(setup.senders)
        }
        // 2. Fan-out.
        report.fanoutExpectedPerMessage = try fanoutProbe(setup: setup)
        for (k, rate) in config.fanoutRates.enumerated() {
            let count = max(1, Int(rate * config.fanoutSeconds))
            Progress.log(
                String(
                    format: "[chat] fan-out: %.0f msg/s into %d groups of %d for %.1f s", rate, config.groups,
                    config.groupMembers, config.fanoutSeconds))
            let r = fanoutRun(
                tag: "f\(k)", rate: rate, count: count, setup: setup, expected: report.fanoutExpectedPerMessage)
            Progress.log(
                String(
                    format:
                        "[chat]   %.0f deliveries/s in the window (%.0f with drain), p99 %.1f ms, %d/%d delivered, errors %@",
                    r.deliveriesPerSecond, r.deliveriesPerSecondWithDrain, r.latency.p99 / 1000, r.delivered,
                    r.messages * r.expectedPerMessage, "\(r.errors)"))
            report.fanoutRuns.append(r)
            settle(setup.members)
        }
        report.crossServer = setup.crossServer
        report.crossServerNote = setup.note
        report.fanoutMembersPerServer = setup.membersPerServer
        report.serversAlive = servers.allSatisfy(\.isRunning)
        return report
    }

    // MARK: - Servers

    private func startServer(_ id: String, secretFile: String, softLimit: Int?) throws -> ChatServerProcess {
        let s = try ChatServerProcess(
            binary: config.confab, nodes: nodes, serverId: id, secretFile: secretFile,
            logPath: "\(root)/\(id).log", softFileLimit: softLimit, extraArguments: extraServerArguments)
        servers.append(s)
        try s.waitListening()
        return s
    }

    /// Waits until both servers answer /api/route alike for a set of names and use both servers.
    private func awaitRouting() throws {
        let names = (0..<32).map { "probe\(runId)_\($0)" }
        let deadline = ProcessIO.nowNanos() + 30_000_000_000
        Progress.log("[chat] waiting for both chat servers to see each other")
        while true {
            let answers = try blockOn { [pools] in
                try await pools.asyncMap { pool in
                    try await names.asyncMap(concurrency: 1) { try await Self.route($0, pool.connection(0)) }
                }
            }
            if answers[0] == answers[1], Set(answers[0]).count == 2 { return }
            if ProcessIO.nowNanos() > deadline {
                throw ChatBenchError(
                    "the two chat servers did not agree on a two-server hash ring within 30 s (answers: \(answers.map { Set($0) }))"
                )
            }
            usleep(500_000)
        }
    }

    static func route(_ user: String, _ c: ChatHTTPConnection) async throws -> String {
        let r = try await c.request(.GET, "/api/route?user=\(user)")
        guard r.status == 200, let id = r.object?["serverId"] as? String else {
            throw ChatBenchError("GET /api/route?user=\(user): \(r.status) \(r.text.prefix(300))")
        }
        return id
    }

    // MARK: - Idle connections

    private func idlePhase(server a: ChatServerProcess, report: inout IdleResult) throws {
        let (host, port) = try ChatURL.hostPort(a.url)
        let warm = 200
        let fdsBefore = a.openFiles() ?? 0
        let hard = a.fileLimits().hard ?? 20_000
        // Everything the limit allows, less the warm-up and 500 descriptors of headroom for the
        // server's ring connections, log and listener, in steps of 500.
        let n = config.idleConnections ?? min(100_000, max(500, ((hard - fdsBefore - warm - 500) / 500) * 500))
        report.requested = n
        report.targetConnections = 100_000
        Progress.log(
            "[chat] idle: registering \(n + warm) users; server A holds \(fdsBefore) descriptors, hard limit \(hard)")
        // Real accounts: a token names its registration, which the server checks against the ring
        // (docs/chat_data.md § Accounts), so tokens for users that do not exist are refused.
        let started = ProcessIO.nowNanos()
        let lines = try blockOn { [pools, runId] in
            try await pools[0].forEach(n + warm) { i, c in
                let r = try await c.request(
                    .POST, "/api/register", json: ["handle": "idle\(runId)_\(i)", "password": "bench-password"])
                guard r.status == 201 || r.status == 200, let t = r.object?["token"] as? String else {
                    throw ChatBenchError("POST /api/register idle\(runId)_\(i): \(r.status) \(r.text.prefix(300))")
                }
                return t
            }
        }
        Progress.log(
            String(
                format: "[chat] idle: %d users registered in %.1f s", lines.count,
                Double(ProcessIO.nowNanos() - started) / 1e9))
        let tokensFile = "\(root)/idle-tokens.txt"
        try lines.joined(separator: "\n").write(toFile: tokensFile, atomically: true, encoding: .utf8)

        // Warm-up connections first (kept open), so code paths and pools the first connections
        // bring in are in "before", not charged to the measured ones.
        let warmFleet = IdleFleet()
        fleets.append(warmFleet)
        let w = try warmFleet.open(
            host: host, port: port, tokensFile: tokensFile, count: warm, children: 1, firstToken: 0, concurrency: 50)
        report.warmupConnections = w.opened
        usleep(1_500_000)
        report.rssBefore = settledRSS(a)
        report.serverFdsBefore = a.openFiles()
        Progress.log(
            "[chat] idle: \(w.opened) warm-up connections open; server A RSS \(report.rssBefore.map { String($0 / 1024) } ?? "?") KiB; opening \(n) more from \(max(config.idleChildren, (n + 8_999) / 9_000)) processes"
        )
        let fleet = IdleFleet()
        fleets.append(fleet)
        // At most 9,000 per child: a process may hold 20,000 descriptors here.
        let children = max(config.idleChildren, (n + 8_999) / 9_000)
        let o = try fleet.open(
            host: host, port: port, tokensFile: tokensFile, count: n, children: children,
            firstToken: warm, concurrency: 200)
        report.opened = o.opened
        report.failed = o.failed
        report.firstError = o.firstError
        report.openSeconds = o.seconds
        usleep(2_000_000)
        report.rssAfter = settledRSS(a)
        report.serverFdsAfter = a.openFiles()
        report.serverAliveWithConnections = a.isRunning
        Progress.log(
            "[chat] idle: \(o.opened) open, \(o.failed) failed in \(String(format: "%.1f", o.seconds)) s; server A RSS \(report.rssAfter.map { String($0 / 1024) } ?? "?") KiB, \(report.serverFdsAfter ?? -1) descriptors\(o.firstError.map { "; first error: \($0)" } ?? "")"
        )
        // Close them all; wait until the server has let go of the descriptors.
        fleet.close()
        warmFleet.close()
        fleets.removeAll()
        let deadline = ProcessIO.nowNanos() + 15_000_000_000
        while (a.openFiles() ?? 0) > fdsBefore + 50, ProcessIO.nowNanos() < deadline { usleep(200_000) }
        report.rssAfterClose = a.rssBytes()
        report.serverFdsAfterClose = a.openFiles()
    }

    /// RSS once it stops moving (three readings 300 ms apart within 1 %), at most 5 s.
    private func settledRSS(_ s: ChatServerProcess) -> UInt64? {
        var last = s.rssBytes()
        let deadline = ProcessIO.nowNanos() + 5_000_000_000
        var stable = 0
        while stable < 2, ProcessIO.nowNanos() < deadline {
            usleep(300_000)
            let now = s.rssBytes()
            if let n = now, let l = last, abs(Double(n) - Double(l)) < Double(l) * 0.01 {
                stable += 1
            } else {
                stable = 0
            }
            last = now
        }
        return last
    }

    // MARK: - Users and chats

    struct Setup: Sendable {
        var users: [BenchUser]
        /// Indices into `users` (= device indices).
        var senders: [Int]
        var receivers: [Int]
        var directChats: [String]
        var members: [Int]
        var groupChats: [String]
        var crossServer: Bool
        var note: String
        var membersPerServer: [Int]
        var text: String
    }

    private func setUpChats(report: inout ChatReport) throws -> Setup {
        let p = config.pairs
        let text = String(repeating: "abcdefghij", count: config.bodyBytes / 10 + 1).prefix(config.bodyBytes)
        // Names by home server (any server answers /api/route).
        var byHome: [[String]] = [[], []]
        var k = 0
        let serverIds = servers.map(\.serverId)
        let needA = 2 * p + 1
        let needB = p + 1
        while byHome[0].count < needA || byHome[1].count < needB {
            let batch = (k..<(k + 64)).map { "b\(runId)_\($0)" }
            k += 64
            let homes = try blockOn { [pools] in
                try await batch.asyncMap(concurrency: 1) { try await Self.route($0, pools[0].connection(0)) }
            }
            for (name, id) in zip(batch, homes) {
                guard let h = serverIds.firstIndex(of: id) else { continue }
                byHome[h].append(name)
            }
            if k > 100_000 { throw ChatBenchError("could not find enough user names per server") }
        }
        // Probe: does a message sent on A reach a device on B?
        var crossServer = config.mode == "cross"
        var note = ""
        if config.mode == "auto" {
            crossServer = try probeCrossServer(from: byHome[0][2 * p], to: byHome[1][p])
            note =
                crossServer
                ? ""
                : "same-server: a message sent on server A did not reach a device on server B within 15 s (cross-server forwarding unavailable), so both users of every pair are on server A"
        } else if config.mode == "same" {
            note = "same-server (forced with --mode same)"
        }
        if !note.isEmpty { Progress.log("[chat] \(note)") }

        var users: [BenchUser] = []
        let senders = Array(0..<p)
        for i in 0..<p { users.append(BenchUser(name: byHome[0][i], home: 0)) }
        let receivers = Array(p..<(2 * p))
        for i in 0..<p {
            users.append(
                crossServer ? BenchUser(name: byHome[1][i], home: 1) : BenchUser(name: byHome[0][p + i], home: 0))
        }
        Progress.log("[chat] registering \(users.count) users (\(config.passwordRounds) PBKDF2 rounds)")
        let tokens = try blockOn { [pools, users] in
            try await pools[0].forEach(users.count) { i, _ in
                // At the user's home server (lane i % size of either pool is only used by lane i % size).
                let c = pools[users[i].home].connection(i % pools[0].size)
                let r = try await c.request(
                    .POST, "/api/register", json: ["handle": users[i].name, "password": "bench-password-\(i)"])
                guard r.status == 201 || r.status == 200, let t = r.object?["token"] as? String else {
                    throw ChatBenchError("POST /api/register \(users[i].name): \(r.status) \(r.text.prefix(300))")
                }
                return t
            }
        }
        for i in users.indices { users[i].token = tokens[i] }

        Progress.log("[chat] creating \(p) direct chats and \(config.groups) groups of \(config.groupMembers)")
        let directChats = try blockOn { [pools, users] in
            try await pools[0].forEach(p) { i, _ in
                let c = pools[users[i].home].connection(i % pools[0].size)
                let r = try await c.request(
                    .POST, "/api/chats/direct", json: ["with": users[p + i].name], token: users[i].token)
                guard r.status == 200 || r.status == 201, let chat = Self.chatId(r.object) else {
                    throw ChatBenchError("POST /api/chats/direct: \(r.status) \(r.text.prefix(300))")
                }
                return chat
            }
        }
        // Group members: half senders (server A), half receivers (server B when cross-server).
        let half = min(p, config.groupMembers / 2)
        var members = Array(senders.prefix(half)) + Array(receivers.prefix(config.groupMembers - half))
        members = Array(members.prefix(config.groupMembers))
        let creator = members[0]
        let others = members.dropFirst().map { users[$0].name }
        let groupChats = try blockOn { [pools, users, config] in
            try await (0..<config.groups).asyncMap(concurrency: 1) { g in
                let r = try await pools[users[creator].home].connection(g).request(
                    .POST, "/api/chats/group", json: ["title": "bench group \(g)", "members": others],
                    token: users[creator].token)
                guard r.status == 200 || r.status == 201, let chat = Self.chatId(r.object) else {
                    throw ChatBenchError("POST /api/chats/group: \(r.status) \(r.text.prefix(300))")
                }
                return chat
            }
        }
        let membersPerServer = [
            members.filter { users[$0].home == 0 }.count, members.filter { users[$0].home == 1 }.count,
        ]

        Progress.log("[chat] connecting \(users.count) WebSocket devices")
        try connectDevices(users)
        return Setup(
            users: users, senders: senders, receivers: receivers, directChats: directChats, members: members,
            groupChats: groupChats, crossServer: crossServer, note: note, membersPerServer: membersPerServer,
            text: String(text))
    }

    static func chatId(_ object: [String: Any]?) -> String? {
        let chat = (object?["chat"] as? [String: Any]) ?? object
        if let s = chat?["chatId"] as? String { return s }
        if let n = chat?["chatId"] as? NSNumber { return n.stringValue }
        return nil
    }

    /// One socket per user, to its home server; device index = user index. Waits for `hello`.
    private func connectDevices(_ users: [BenchUser]) throws {
        let urls = try servers.map { try ChatURL.hostPort($0.url) }
        let router = self.router
        sockets = try blockOn { [group] in
            try await Array(users.enumerated()).asyncMap(concurrency: 32) { i, u in
                let (host, port) = urls[u.home]
                let s = try await ChatSocket.connect(host: host, port: port, token: u.token, group: group) {
                    buffer, now in
                    router.onText(device: i, buffer, at: now)
                }
                let first = try await s.firstText()
                guard first.contains("\"hello\"") else {
                    throw ChatBenchError("\(u.name): first frame was not hello: \(first.prefix(300))")
                }
                return s
            }
        }
    }

    /// Registers two users (one per server), makes their chat, sends one message from the first
    /// and reports whether the second's device got it.
    private func probeCrossServer(from: String, to: String) throws -> Bool {
        let urls = try servers.map { try ChatURL.hostPort($0.url) }
        let router = self.router
        let ok = try blockOn { [pools, group] () async throws -> Bool in
            var tokens: [String] = []
            for (home, name) in [from, to].enumerated() {
                let r = try await pools[home].connection(0).request(
                    .POST, "/api/register", json: ["handle": name, "password": "bench-password"])
                guard let t = r.object?["token"] as? String else {
                    throw ChatBenchError("POST /api/register: \(r.status) \(r.text.prefix(300))")
                }
                tokens.append(t)
            }
            let r = try await pools[0].connection(0).request(
                .POST, "/api/chats/direct", json: ["with": to], token: tokens[0])
            guard let chat = Self.chatId(r.object) else {
                throw ChatBenchError("POST /api/chats/direct: \(r.status) \(r.text.prefix(300))")
            }
            let sa = try await ChatSocket.connect(host: urls[0].0, port: urls[0].1, token: tokens[0], group: group)
            let sb = try await ChatSocket.connect(host: urls[1].0, port: urls[1].1, token: tokens[1], group: group) {
                buffer, now in
                router.onText(device: -1, buffer, at: now)
            }
            _ = try await sa.firstText()
            _ = try await sb.firstText()
            router.watch(clientId: "probe-1")
            sa.send(SendFrame.json(chatId: chat, clientId: "probe-1", text: "probe"))
            // Up to 15 s: right after start the chat's owner may still wait out its lease gate
            // (docs/chat_ordering.md § Leases), and a send waits with it.
            for _ in 0..<150 {
                if !router.watched().isEmpty { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            sa.close()
            sb.close()
            return !router.watched().isEmpty
        }
        Progress.log("[chat] cross-server probe: \(ok ? "delivered" : "NOT delivered within 15 s")")
        return ok
    }

    // MARK: - Runs

    private func latencyRun(tag: String, rate: Double, count: Int, setup: Setup) -> ChatRunResult {
        let book = ReceiptBook(tag: tag, messages: count, counted: Set(setup.receivers))
        let sockets = self.sockets
        let p = setup.senders.count
        return measuringCPU {
            OpenLoopSender(rate: rate, messages: count, drainTimeout: drainTimeout).run(
                book: book, expectedPerMessage: 1, label: tag, router: router
            ) { i in
                let pair = i % p
                sockets[setup.senders[pair]].send(
                    SendFrame.json(chatId: setup.directChats[pair], clientId: "\(tag)-\(i)", text: setup.text))
            }
        }
    }

    /// How long a run waits for late receipts (quick: 10 s, else 60 s); what has not arrived by
    /// then counts as unreceived.
    private var drainTimeout: Double { config.quick ? 10 : 60 }

    /// Waits until the servers have worked off what earlier runs left queued: a `ping` on every
    /// device is answered only after the frames that device sent before it (frames of one device
    /// are handled in order), so all pongs back means no send is still pending. Returns seconds.
    @discardableResult
    private func settle(_ devices: [Int]) -> Double {
        let start = ProcessIO.nowNanos()
        let before = router.pongCount
        for d in devices { sockets[d].send(#"{"type":"ping"}"#) }
        let deadline = start + 120_000_000_000
        while router.pongCount - before < devices.count, ProcessIO.nowNanos() < deadline { usleep(10_000) }
        let seconds = Double(ProcessIO.nowNanos() - start) / 1e9
        if seconds > 0.5 {
            Progress.log(
                String(format: "[chat]   settled in %.1f s (servers were still working off earlier sends)", seconds))
        }
        return seconds
    }

    /// Pids of the ring's nodes (ring.json records them).
    private lazy var nodePids: [Int32] = {
        struct State: Decodable {
            struct Node: Decodable { var pid: Int32? }
            var nodes: [Node]
        }
        guard let dir = ring?.directory, let data = FileManager.default.contents(atPath: "\(dir)/ring.json"),
            let state = try? JSONDecoder().decode(State.self, from: data)
        else { return [] }
        return state.nodes.compactMap(\.pid)
    }()

    /// Runs `body` and adds the CPU seconds of the servers, the ring's nodes and the bench to its result.
    private func measuringCPU(_ body: () -> ChatRunResult) -> ChatRunResult {
        func sample() -> [String: Double] {
            var out: [String: Double] = [:]
            for (i, s) in servers.enumerated() {
                out[i == 0 ? "server_a" : "server_b"] = CPUTime.seconds(pid: s.pid) ?? 0
            }
            out["ring"] = nodePids.compactMap { CPUTime.seconds(pid: $0) }.reduce(0, +)
            out["bench"] = CPUTime.seconds(pid: nil) ?? 0
            return out
        }
        let before = sample()
        let countersBefore = sendCounters()
        let start = ProcessIO.nowNanos()
        var r = body()
        r.stalls = MachineStallProbe.shared.summary(from: start, to: ProcessIO.nowNanos())
        let after = sample()
        r.cpuSeconds = after.reduce(into: [:]) { $0[$1.key] = $1.value - (before[$1.key] ?? 0) }
        if let b = countersBefore, let a = sendCounters(), a.messages > b.messages {
            let sends = a.messages - b.messages
            r.ringReadsPerSend = (a.reads - b.reads) / sends
            r.ringWritesPerSend = (a.writes - b.writes) / sends
        }
        return r
    }

    /// Waits until both servers' views of the live set have settled (`confab_chat_live_set_settled`
    /// is 1 on each): until then an owner reads each chat's members once more when its view
    /// settles (docs/chat_ordering.md, "Members"), a start-up cost the steady-state runs must not
    /// count. About 14 s after the second server joined, with the default heartbeat TTL.
    private func awaitSettledViews() throws {
        let started = ProcessIO.nowNanos()
        var logged = false
        while true {
            let settled = try scrapeServers().map { $0["confab_chat_live_set_settled"] }
            if settled.allSatisfy({ ($0 ?? 1) >= 1 }) { break }
            if !logged {
                Progress.log("[chat] waiting for the servers' views of the live set to settle (up to 60 s)")
                logged = true
            }
            guard ProcessIO.nowNanos() - started < 60_000_000_000 else {
                throw ChatBenchError("the chat servers' live-set views did not settle within 60 s: \(settled)")
            }
            usleep(250_000)
        }
        if logged {
            Progress.log(
                String(format: "[chat] views settled after %.1f s", Double(ProcessIO.nowNanos() - started) / 1e9))
        }
    }

    /// Each chat server's /metrics, parsed.
    private func scrapeServers() throws -> [[String: Double]] {
        let urls = servers.map(\.url)
        let group = self.group
        return try blockOn {
            var out: [[String: Double]] = []
            for url in urls {
                guard let r = url.range(of: "://"), let colon = url[r.upperBound...].lastIndex(of: ":"),
                    let port = Int(url[url.index(after: colon)...])
                else { throw ChatBenchError("unexpected server URL \(url)") }
                let connection = try await ChatHTTPConnection.connect(
                    host: String(url[r.upperBound..<colon]), port: port, group: group)
                let text = try await connection.request(.GET, "/metrics").text
                await connection.close()
                out.append(PrometheusText.values(text))
            }
            return out
        }
    }

    /// The send-path counters of both chat servers, summed (their /metrics), or nil if a scrape failed.
    private func sendCounters() -> (messages: Double, reads: Double, writes: Double)? {
        guard let scraped = try? scrapeServers() else { return nil }
        var total = (messages: 0.0, reads: 0.0, writes: 0.0)
        for values in scraped {
            total.messages += values["confab_chat_messages_total"] ?? 0
            total.reads += values["confab_chat_send_ring_reads_total"] ?? 0
            total.writes += values["confab_chat_send_ring_writes_total"] ?? 0
        }
        return total
    }

    /// Sends one group message and counts the member devices that get it (the sender's own device
    /// may or may not be among them; the runs expect what the probe saw).
    private func fanoutProbe(setup: Setup) throws -> Int {
        router.watch(clientId: "fprobe-1")
        sockets[setup.members[1]].send(SendFrame.json(chatId: setup.groupChats[0], clientId: "fprobe-1", text: "probe"))
        var last = -1
        var stableSince = ProcessIO.nowNanos()
        let deadline = ProcessIO.nowNanos() + 15_000_000_000
        while ProcessIO.nowNanos() < deadline {
            let n = router.watched().count
            if n != last {
                last = n
                stableSince = ProcessIO.nowNanos()
            }
            if n >= setup.members.count || (n > 0 && ProcessIO.nowNanos() - stableSince > 1_000_000_000) { break }
            usleep(20_000)
        }
        let got = router.watched().count
        Progress.log("[chat] fan-out probe: \(got) of \(setup.members.count) member devices got the message")
        guard got > 0 else { throw ChatBenchError("no member device received the fan-out probe message") }
        return got
    }

    private func fanoutRun(tag: String, rate: Double, count: Int, setup: Setup, expected: Int) -> ChatRunResult {
        let book = ReceiptBook(tag: tag, messages: count, counted: Set(setup.members))
        let sockets = self.sockets
        let m = setup.members.count
        let g = setup.groupChats.count
        return measuringCPU {
            OpenLoopSender(rate: rate, messages: count, drainTimeout: drainTimeout).run(
                book: book, expectedPerMessage: expected, label: tag, router: router
            ) { i in
                sockets[setup.members[i % m]].send(
                    SendFrame.json(chatId: setup.groupChats[i % g], clientId: "\(tag)-\(i)", text: setup.text))
            }
        }
    }
}

extension Sequence where Element: Sendable {
    /// Maps with up to `concurrency` tasks at a time, keeping the order.
    func asyncMap<T: Sendable>(concurrency: Int = 8, _ f: @escaping @Sendable (Element) async throws -> T) async throws
        -> [T]
    {
        let items = Array(self)
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var next = 0
            var out = [T?](repeating: nil, count: items.count)
            while next < Swift.min(concurrency, items.count) {
                let i = next
                let item = items[i]
                group.addTask { (i, try await f(item)) }
                next += 1
            }
            for try await (i, v) in group {
                out[i] = v
                if next < items.count {
                    let j = next
                    let item = items[j]
                    group.addTask { (j, try await f(item)) }
                    next += 1
                }
            }
            return out.map { $0! }
        }
    }
}

extension LocalRing {
    /// Runs confab with its output discarded; the exit status.
    static func runConfabQuietly(_ binary: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
