import ConfabChat
import ConfabClient
import ConfabRing
import ConfabWire
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The end-to-end checker (in the spirit of Jepsen): a 3-node RF-3 ring of node processes, two chat
/// server processes whose clocks differ by 400 ms, devices that send into 1:1 chats and groups,
/// disconnect and reconnect at random moments and catch up exactly as docs/chat_protocol.md tells
/// a client to; one chat server SIGKILLed (and later restarted) and one node SIGKILLed and
/// restarted during the run. At the end, for every device and every chat: every message
/// acknowledged to anyone was seen exactly once, in the same order on every device, and
/// everything in the ring's history was acknowledged. Seeded: the seed is printed, and
/// `CONFAB_CHECKER_SEED` replays a run's choices (process timing still varies).
@Suite(.serialized) struct EndToEndCheckerTests {
    @Test func noAcknowledgedMessageIsLostDuplicatedOrReordered() async throws {
        let seed =
            ProcessInfo.processInfo.environment["CONFAB_CHECKER_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 1...UInt64.max)
        print("end-to-end checker: seed \(seed) (CONFAB_CHECKER_SEED=\(seed) replays its choices)")
        let cluster = try await ChatClusterProcesses.start(servers: ["ec1"])
        do {
            try await cluster.startServer("ec2", arguments: ["--clock-offset-ms", "400"])
            try await cluster.waitForServers(count: 2)
            try await run(cluster, seed: seed)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func run(_ cluster: ChatClusterProcesses, seed: UInt64) async throws {
        var rng = SplitMix(seed: seed)
        let users = ["ua_one", "ub_two", "uc_three", "ud_four", "ue_five", "uf_six"]
        var tokens: [String: String] = [:]
        for u in users { tokens[u] = try await cluster.register(u) }
        let port = cluster.port("ec2")
        var chats: [String: [String]] = [:]  // chatId → members
        for (a, b) in [(0, 1), (2, 3), (4, 5), (0, 3)] {
            let r = try await ClusterHTTP.request(
                .post, "/api/chats/direct", port: port, token: tokens[users[a]], body: ["with": users[b]])
            chats[try #require(r.json["chatId"] as? String, "\(r.text)")] = [users[a], users[b]]
        }
        for members in [[0, 1, 2, 3, 4, 5], [1, 2, 4]] {
            let r = try await ClusterHTTP.request(
                .post, "/api/chats/group", port: port, token: tokens[users[members[0]]],
                body: ["title": "g", "members": members.dropFirst().map { users[$0] }])
            chats[try #require(r.json["chatId"] as? String, "\(r.text)")] = members.map { users[$0] }
        }
        let devices = users.enumerated().map { i, u in
            CheckerDevice(
                user: u, token: tokens[u]!, chats: chats.filter { $0.value.contains(u) }.map(\.key).sorted(),
                cluster: cluster,
                seed: seed &+ UInt64(i) &* 0x9E37)
        }
        let runners = devices.map { d in Task { try await d.run() } }

        // The faults, at seeded moments.
        func pause(_ base: Int) async throws { try await Task.sleep(for: .milliseconds(base + Int(rng.next() % 1000))) }
        try await pause(3000)
        print("checker: SIGKILL chat server ec1")
        cluster.sigkill("ec1")
        try await pause(3000)
        print("checker: SIGKILL node 2")
        cluster.killNode(1)
        try await pause(2000)
        print("checker: restart node 2")
        try await cluster.restartNode(1)
        try await pause(2000)
        print("checker: restart chat server ec1")
        try await cluster.startServer("ec1")
        try await pause(3000)
        for d in devices { d.stopSending() }
        // The last catch-up starts only once every device's sends are acknowledged: a device that
        // caught up earlier could not have seen a message acknowledged after it.
        let drained = ContinuousClock.now + .seconds(120)
        while devices.contains(where: { $0.pendingCount > 0 }), ContinuousClock.now < drained {
            try await Task.sleep(for: .milliseconds(50))
        }
        for d in devices { d.startFinalCatchUp() }
        for r in runners { try await r.value }

        // The ring's history of every chat, read at ALL.
        var config = ConfabClient.Configuration(
            nodes: cluster.nodePorts.map { NodeAddress(host: "127.0.0.1", port: $0) })
        config.requestTimeout = .seconds(10)
        config.schema = ChatSchema.registry
        let client = ConfabClient(configuration: config)
        let reader = ChatHistoryReader(storage: client, consistency: .all)
        var ringHistory: [String: [MessageRecord]] = [:]
        for chat in chats.keys {
            ringHistory[chat] = try await reader.messages(chatId: Int64(chat)!, before: nil, limit: 10_000).reversed()
        }
        await client.shutdown()

        var acked: [String: (chat: String, seq: Int64)] = [:]
        for d in devices { for (c, a) in d.acks { acked[c] = a } }
        var lost = 0
        var duplicated = 0
        var reordered = 0
        var unacknowledged = 0
        var problems: [String] = []
        for (chat, members) in chats.sorted(by: { $0.key < $1.key }) {
            let history = ringHistory[chat] ?? []
            let historyIds = history.map(\.messageId)
            // The ring: every clientId once, every stored message acknowledged.
            let byClient = Dictionary(grouping: history, by: { $0.clientId ?? "" })
            for (c, copies) in byClient where copies.count > 1 {
                duplicated += copies.count - 1
                problems.append("chat \(chat): clientId \(c) stored \(copies.count) times")
            }
            for m in history where acked[m.clientId ?? ""] == nil {
                unacknowledged += 1
                problems.append("chat \(chat): \(m.clientId ?? "?") is in the ring but was never acknowledged")
            }
            let ackedHere = acked.filter { $0.value.chat == chat }
            for (c, a) in ackedHere where !history.contains(where: { $0.clientId == c && $0.seq == a.seq }) {
                lost += 1
                problems.append("chat \(chat): acknowledged \(c) (seq \(a.seq)) is not in the ring's history")
            }
            for d in devices where members.contains(d.user) {
                let view = d.view(of: chat)
                let ids = view.map(\.messageId)
                let missing = ackedHere.keys.filter { c in !view.contains { $0.clientId == c } }
                lost += missing.count
                if !missing.isEmpty {
                    let missingSample = missing.sorted().prefix(3).map { c -> String in
                        let m = history.first { $0.clientId == c }
                        let below = view.last { $0.seq < (m?.seq ?? 0) }?.seq ?? 0
                        let above = view.first { $0.seq > (m?.seq ?? 0) }?.seq ?? 0
                        return
                            "\(c) at seq \(m?.seq ?? 0) prev \(m?.prev ?? 0) (device holds \(below) below, \(above) above)"
                    }
                    problems.append(
                        "\(d.user) chat \(chat): never saw \(missingSample); device log: \(d.log(of: chat).suffix(12))")
                }
                let twice = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }
                duplicated += twice.count
                if !twice.isEmpty { problems.append("\(d.user) chat \(chat): shown twice \(twice.keys.prefix(5))") }
                if ids != historyIds {
                    reordered += 1
                    problems.append(
                        "\(d.user) chat \(chat): order differs from the ring's (\(ids.count) vs \(historyIds.count) messages)"
                    )
                }
            }
        }
        let totalAcked = acked.count
        let reconnects = devices.reduce(0) { $0 + $1.connects } - devices.count
        print(
            """
            end-to-end checker (seed \(seed)): acknowledged \(totalAcked), devices \(devices.count), chats \(chats.count), \
            reconnects \(reconnects), gaps caught up \(devices.reduce(0) { $0 + $1.gaps }), retracted placements \
            \(devices.reduce(0) { $0 + $1.retracted }) — lost \(lost), duplicated \(duplicated), reordered \(reordered), \
            unacknowledged in the ring \(unacknowledged)
            """)
        for p in problems.prefix(20) { print("  \(p)") }
        #expect(totalAcked >= 60, "too few messages acknowledged for the check to mean much")
        #expect(
            lost == 0 && duplicated == 0 && reordered == 0 && unacknowledged == 0,
            "seed \(seed): \(problems.prefix(10))")
    }
}

/// One device of one user, following the client rule of docs/chat_protocol.md ("Catch-up"):
/// per-chat `last`, gap detection on `prev`, `resync`, sync after every (re)connect, resends with
/// `retry: true` until acknowledged. Sends at random, disconnects at random.
final class CheckerDevice: Sendable {
    struct Held: Sendable {
        var seq: Int64
        var messageId: String
        var clientId: String?
    }
    private struct State: Sendable {
        var held: [String: [Int64: Held]] = [:]  // chat → seq → message
        var last: [String: Int64] = [:]
        var pending: [String: (chat: String, text: String)] = [:]
        var acks: [String: (chat: String, seq: Int64)] = [:]
        var sending = true
        var sent = 0
        var connects = 0
        var gaps = 0
        var retracted = 0
        var syncing = false
        var log: [String: [String]] = [:]
        var finalPhase = false
        var rng: SplitMix
    }

    let user: String
    let token: String
    let chats: [String]
    let cluster: ChatClusterProcesses
    private let state: NIOLockedValueBox<State>

    init(user: String, token: String, chats: [String], cluster: ChatClusterProcesses, seed: UInt64) {
        self.user = user
        self.token = token
        self.chats = chats
        self.cluster = cluster
        self.state = NIOLockedValueBox(State(rng: SplitMix(seed: seed)))
    }

    func stopSending() { state.withLockedValue { $0.sending = false } }
    func startFinalCatchUp() { state.withLockedValue { $0.finalPhase = true } }
    var pendingCount: Int { state.withLockedValue { $0.pending.count } }
    var acks: [String: (chat: String, seq: Int64)] { state.withLockedValue { $0.acks } }
    var connects: Int { state.withLockedValue { $0.connects } }
    var gaps: Int { state.withLockedValue { $0.gaps } }
    var retracted: Int { state.withLockedValue { $0.retracted } }

    func log(of chat: String) -> [String] { state.withLockedValue { $0.log[chat] ?? [] } }

    /// The chat as this device shows it: by seq.
    func view(of chat: String) -> [Held] {
        state.withLockedValue { ($0.held[chat] ?? [:]).values.sorted { $0.seq < $1.seq } }
    }

    private func random(_ n: UInt64) -> UInt64 { state.withLockedValue { $0.rng.next() % n } }

    /// Runs until sending has stopped, every send is acknowledged and a final catch-up is done.
    func run() async throws {
        let deadline = ContinuousClock.now + .seconds(150)
        var finalSyncDone = false
        while ContinuousClock.now < deadline {
            guard let (socket, _) = try? await cluster.connect(user, token: token) else {
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            state.withLockedValue {
                $0.connects += 1
                $0.syncing = false
            }
            var index = 0
            requestSync(socket)
            for (clientId, p) in state.withLockedValue({ $0.pending }) {
                send(socket, clientId: clientId, chat: p.chat, text: p.text, retry: true)
            }
            var lifetime = 200 + Int(random(4000))  // ticks of ~10 ms before a random disconnect
            while !socket.ended.withLockedValue({ $0 }) {
                for text in socket.texts(from: index) {
                    index += 1
                    handle(text, socket)
                }
                let (sending, pending, syncing, final) = state.withLockedValue {
                    ($0.sending, $0.pending.count, $0.syncing, $0.finalPhase)
                }
                if final && pending == 0 && !syncing {
                    if finalSyncDone {
                        await socket.close()
                        return
                    }
                    // One more catch-up once every device's sends are acknowledged: the last word.
                    requestSync(socket)
                    finalSyncDone = true
                    continue
                }
                var generator = GeneratorAdapter(device: self)
                if sending, random(100) < 8, let chat = chats.randomElement(using: &generator) {
                    let clientId = state.withLockedValue { s -> String in
                        s.sent += 1
                        return "\(user)-\(s.sent)"
                    }
                    let text = "\(clientId) says \(random(1_000_000))"
                    state.withLockedValue { $0.pending[clientId] = (chat, text) }
                    send(socket, clientId: clientId, chat: chat, text: text, retry: false)
                }
                lifetime -= 1
                if sending && lifetime <= 0 {
                    await socket.close()
                    try await Task.sleep(for: .milliseconds(Int(random(800))))
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        throw TestFailure(
            "\(user): did not finish within 150 s (pending \(state.withLockedValue { $0.pending.keys.sorted() }))")
    }

    private func send(_ socket: TestSocket, clientId: String, chat: String, text: String, retry: Bool) {
        var frame: [String: Any] = ["type": "send", "chatId": chat, "clientId": clientId, "text": text]
        if retry { frame["retry"] = true }
        try? socket.send(frame)
    }

    private func requestSync(_ socket: TestSocket) {
        let cursors = state.withLockedValue { s -> [String: String] in
            s.syncing = true
            return Dictionary(uniqueKeysWithValues: chats.map { ($0, String(s.last[$0] ?? 0)) })
        }
        try? socket.send(["type": "sync", "cursors": cursors, "limit": 50])
    }

    private func handle(_ text: String, _ socket: TestSocket) {
        guard let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let type = o["type"] as? String
        else { return }
        switch type {
        case "message":
            guard let m = o["message"] as? [String: Any] else { return }
            let gap = state.withLockedValue { s in Self.apply(m, live: true, &s) }
            if gap, !state.withLockedValue({ $0.syncing }) {
                state.withLockedValue { $0.gaps += 1 }
                requestSync(socket)
            }
        case "sync":
            let more = state.withLockedValue { s -> Bool in
                for m in o["messages"] as? [[String: Any]] ?? [] { _ = Self.apply(m, live: false, &s) }
                for (chat, seq) in o["cursors"] as? [String: String] ?? [:] {
                    if let v = Int64(seq) {
                        s.log[chat, default: []].append(
                            "sync→\(v) (had \(s.last[chat] ?? 0), got \((o["messages"] as? [[String: Any]] ?? []).filter { $0["chatId"] as? String == chat }.count))"
                        )
                        s.last[chat] = max(s.last[chat] ?? 0, v)
                    }
                }
                s.syncing = false
                return o["more"] as? Bool == true
            }
            if more { requestSync(socket) }
        case "resync":
            requestSync(socket)
        case "ack":
            guard let c = o["clientId"] as? String, let chat = o["chatId"] as? String,
                let seq = (o["seq"] as? String).flatMap({ Int64($0) })
            else { return }
            state.withLockedValue { s in
                s.pending[c] = nil
                s.acks[c] = (chat, seq)
            }
        case "error":
            // A send that failed (storage_unavailable, rate_limited…) stays pending and is sent
            // again with retry after the next reconnect or at once here.
            if let c = o["ref"] as? String, let p = state.withLockedValue({ $0.pending[c] }) {
                Task {
                    try? await Task.sleep(for: .milliseconds(200))
                    self.send(socket, clientId: c, chat: p.chat, text: p.text, retry: true)
                }
            }
        default:
            break
        }
    }

    /// Applies one message by the client rule; true when it reveals a gap.
    private static func apply(_ m: [String: Any], live: Bool, _ s: inout State) -> Bool {
        guard let chat = m["chatId"] as? String, let seq = (m["seq"] as? String).flatMap({ Int64($0) }),
            let prev = (m["prev"] as? String).flatMap({ Int64($0) }), let id = m["messageId"] as? String
        else { return false }
        var held = s.held[chat] ?? [:]
        if let lower = held.first(where: { $0.value.messageId == id && $0.key < seq })?.key {
            held[lower] = nil  // a retracted placement, re-placed higher
            s.retracted += 1
        }
        if held.contains(where: { $0.value.messageId == id && $0.key > seq }) {
            s.held[chat] = held
            return false
        }
        held[seq] = Held(seq: seq, messageId: id, clientId: m["clientId"] as? String)
        s.held[chat] = held
        guard live else { return false }
        let last = s.last[chat] ?? 0
        if seq <= last { return false }
        if prev == last {
            s.last[chat] = seq
            s.log[chat, default: []].append("live \(seq)")
            return false
        }
        s.log[chat, default: []].append("gap \(seq) prev \(prev) last \(last)")
        return true
    }
}

/// Lets `randomElement(using:)` draw from the device's seeded generator.
struct GeneratorAdapter: RandomNumberGenerator {
    let device: CheckerDevice
    mutating func next() -> UInt64 { device.nextRandom() }
}

extension CheckerDevice {
    func nextRandom() -> UInt64 { state.withLockedValue { $0.rng.next() } }
}
